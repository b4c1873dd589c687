//! Harness of the `pte_load` fuzz target, shared with `tests/fuzz_replay.rs` (which replays
//! the committed corpus on stable Rust). Arbitrary bytes as a `.pte`: loading must fail cleanly or give a module whose every method's
//! metadata can be read and which executes (or fails with an error) on zero inputs shaped as
//! its metadata says.
use diffulex_edge::pte::{DType, MethodMeta, PteModule, Tensor, ValueKind};
use half::{bf16, f16};

/// Largest input we build (keeps a hostile shape from exhausting memory).
const MAX_ELEMS: usize = 1 << 16;

fn shape(info: &diffulex_edge::pte::TensorInfo) -> Option<Vec<usize>> {
    let dims: Option<Vec<usize>> = info
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect();
    let dims = dims?;
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    (n <= MAX_ELEMS).then_some(dims)
}

fn run(m: &mut PteModule, meta: &MethodMeta) {
    let mut shapes = Vec::new();
    for info in &meta.inputs {
        if info.kind != ValueKind::Tensor {
            return;
        }
        match shape(info) {
            Some(s) => shapes.push((info.dtype, s)),
            None => return,
        }
    }
    let zeros = Zeros::default();
    let inputs: Option<Vec<Tensor<'_>>> = shapes
        .iter()
        .map(|(dt, s)| {
            let n = s.iter().product::<usize>();
            Some(match dt {
                DType::F32 => Tensor::new(&zeros.f32[..n], s),
                DType::F64 => Tensor::new(&zeros.f64[..n], s),
                DType::F16 => Tensor::new(&zeros.f16[..n], s),
                DType::BF16 => Tensor::new(&zeros.bf16[..n], s),
                DType::I64 => Tensor::new(&zeros.i64[..n], s),
                DType::I32 => Tensor::new(&zeros.i32[..n], s),
                DType::I16 => Tensor::new(&zeros.i16[..n], s),
                DType::I8 => Tensor::new(&zeros.i8[..n], s),
                DType::U8 => Tensor::new(&zeros.u8[..n], s),
                DType::Bool => Tensor::new(&zeros.bool[..n], s),
                // A dtype added later: nothing to feed.
                _ => return None,
            })
        })
        .collect();
    let Some(inputs) = inputs else { return };
    if let Ok(out) = m.execute(&meta.name, &inputs) {
        for i in 0..out.len() {
            if let Ok(o) = out.get(i) {
                let _ = o.to_owned();
            }
        }
    }
}

struct Zeros {
    f32: Vec<f32>,
    f64: Vec<f64>,
    f16: Vec<f16>,
    bf16: Vec<bf16>,
    i64: Vec<i64>,
    i32: Vec<i32>,
    i16: Vec<i16>,
    i8: Vec<i8>,
    u8: Vec<u8>,
    bool: Vec<bool>,
}

impl Default for Zeros {
    fn default() -> Self {
        Zeros {
            f32: vec![0.0; MAX_ELEMS],
            f64: vec![0.0; MAX_ELEMS],
            f16: vec![f16::ZERO; MAX_ELEMS],
            bf16: vec![bf16::ZERO; MAX_ELEMS],
            i64: vec![0; MAX_ELEMS],
            i32: vec![0; MAX_ELEMS],
            i16: vec![0; MAX_ELEMS],
            i8: vec![0; MAX_ELEMS],
            u8: vec![0; MAX_ELEMS],
            bool: vec![false; MAX_ELEMS],
        }
    }
}

/// One input: the bytes as a program.
pub fn run_bytes(data: &[u8]) {
    let Ok(mut m) = PteModule::from_bytes(data.to_vec()) else {
        return;
    };
    let Ok(names) = m.method_names() else {
        return;
    };
    for name in names {
        let _ = m.has_method(&name);
        if let Ok(meta) = m.method_meta(&name) {
            run(&mut m, &meta);
        }
    }
}
