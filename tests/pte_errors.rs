//! Every bad input gives a typed error with context, and nothing crashes.
#![cfg(feature = "pte")]

mod common;

use common::fixture;
use diffulex_edge::pte::{DType, ErrorCode, PteError, PteModule, Tensor};

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("diffulex-pte-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn mlp_bytes() -> Vec<u8> {
    std::fs::read(fixture("mlp.pte")).unwrap()
}

/// Issue 13, item 13: a directory, a FIFO or a device is refused from its file type, before
/// anything opens it (opening a FIFO blocks until a writer comes), by both loaders; the path is
/// quoted with its control characters escaped.
#[test]
fn paths_that_are_not_regular_files_are_refused_before_opening() {
    let dir = std::env::temp_dir().join(format!("diffulex-pte-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("model\n\x1b[2J.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (tx, rx) = std::sync::mpsc::channel();
    let paths = [
        (fifo.clone(), "is a FIFO (named pipe), not a regular file"),
        (dir.clone(), "is a directory"),
        ("/dev/zero".into(), "is a character device"),
    ];
    std::thread::spawn(move || {
        for (path, kind) in paths {
            for copy in [false, true] {
                let r = if copy {
                    PteModule::load_copy(&path)
                } else {
                    PteModule::load(&path)
                };
                tx.send((kind, r.map(|_| ()).unwrap_err())).unwrap();
            }
        }
    });
    for _ in 0..6 {
        // A generous watchdog, so a hang fails the test instead of stalling the run.
        let (kind, err) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("loading a FIFO hangs");
        let msg = err.to_string();
        assert!(matches!(err, PteError::Io { .. }), "{msg}");
        assert!(msg.contains(kind), "{msg}");
        assert!(!msg.contains('\n') && !msg.contains('\x1b'), "{msg:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file() {
    let err = PteModule::load("/definitely/not/here.pte").unwrap_err();
    assert!(
        matches!(&err, PteError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert!(
        err.to_string().contains("/definitely/not/here.pte"),
        "{err}"
    );
}

#[test]
fn empty_file() {
    let path = temp_file("empty.pte", b"");
    let err = PteModule::load(&path).unwrap_err();
    assert!(matches!(err, PteError::EmptyFile { .. }), "{err}");
    assert!(matches!(
        PteModule::from_bytes(Vec::new()),
        Err(PteError::EmptyFile { .. })
    ));
}

#[test]
fn truncated_program() {
    let bytes = mlp_bytes();
    for keep in [8, 64, bytes.len() / 2, bytes.len() - 1] {
        let path = temp_file(&format!("truncated-{keep}.pte"), &bytes[..keep]);
        let err = PteModule::load(&path).unwrap_err();
        assert!(err.code().is_some(), "truncated to {keep}: {err}");
        assert!(
            err.to_string().contains("truncated"),
            "error names the file: {err}"
        );
    }
}

#[test]
fn bit_flipped_magic_is_rejected() {
    let mut bytes = mlp_bytes();
    bytes[4] ^= 0x01; // inside the "ET12" file identifier
    let err = PteModule::from_bytes(bytes).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidProgram), "{err}");
}

/// Flipping one bit of every byte (bit `pos % 8`) gives a clean error or a (possibly wrong)
/// result, never a crash. Some flips pass ExecuTorch's own flatbuffer verification and would
/// make the runtime segfault or abort; the integrity checks of `PteModule::load` reject those.
#[test]
fn bit_flips_do_not_crash() {
    let original = mlp_bytes();
    let x = [0.5f32; 16];
    let (mut rejected, mut corrupt, mut ran) = (0, 0, 0);
    for pos in 0..original.len() {
        let mut bytes = original.clone();
        bytes[pos] ^= 1 << (pos % 8);
        let mut m = match PteModule::from_bytes(bytes) {
            Ok(m) => m,
            Err(e) => {
                assert!(e.code().is_some(), "offset {pos}: {e}");
                corrupt += usize::from(matches!(e, PteError::CorruptProgram { .. }));
                rejected += 1;
                continue;
            }
        };
        match m.execute("forward", &[Tensor::f32(&x, &[2, 8])]) {
            Ok(_) => ran += 1,
            Err(_) => rejected += 1,
        }
    }
    assert!(rejected > 0, "some flips must be detected ({ran} ran)");
    assert!(
        corrupt >= 15,
        "the integrity checks caught only {corrupt} flips"
    );
}

/// Flips `mask` at `pos` of mlp.pte and returns the load error.
fn corrupt_mlp(pos: usize, mask: u8) -> PteError {
    let mut bytes = mlp_bytes();
    bytes[pos] ^= mask;
    let path = temp_file(&format!("corrupt-{pos}-{mask}.pte"), &bytes);
    PteModule::load(&path).unwrap_err()
}

fn assert_corrupt(err: &PteError, instruction: usize, needle: &str) {
    match err {
        PteError::CorruptProgram {
            file,
            method,
            instruction: at,
            ..
        } => {
            assert!(file.is_some(), "{err}");
            assert_eq!(method.as_deref(), Some("forward"), "{err}");
            assert_eq!(*at, Some(instruction), "{err}");
        }
        other => panic!("expected CorruptProgram, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("corrupt-"), "names the file: {text}");
    assert!(text.contains(needle), "{text} should contain {needle}");
    assert!(
        text.contains("not produced by a compatible exporter"),
        "{text}"
    );
    assert_eq!(err.code(), Some(ErrorCode::InvalidProgram));
}

// The byte offsets below are inside mlp.pte's instruction and value tables (the fixture is
// byte-for-byte reproducible); each flip used to crash ExecuTorch 1.5.1.

#[test]
fn operator_index_out_of_range_is_rejected() {
    // KernelCall.op_index 2 -> 514: ExecuTorch indexed its operator table with it (segfault).
    let err = corrupt_mlp(1713, 0x02);
    assert_corrupt(
        &err,
        2,
        "operator index 514 is out of range (the method has 3 operators)",
    );
}

#[test]
fn kernel_argument_of_wrong_type_is_rejected() {
    // permute_copy's self argument now refers to an Int value: fatal toTensor() assert.
    let err = corrupt_mlp(1676, 0x10);
    assert_corrupt(
        &err,
        3,
        "argument 0: is value 18, an Int, where the kernel expects a Tensor",
    );
    // addmm's beta (a Scalar) now refers to a Tensor: fatal toScalar() assert.
    let err = corrupt_mlp(1636, 0x10);
    assert_corrupt(&err, 4, "expects a Scalar");
    // permute_copy's dims (an IntList) now refers to a Tensor: fatal toIntList() assert.
    let err = corrupt_mlp(1680, 0x01);
    assert_corrupt(&err, 3, "expects an IntList");
}

#[test]
fn value_of_wrong_type_is_rejected() {
    // A Tensor value's type tag changed, so the kernel reading it would assert.
    let err = corrupt_mlp(1884, 1 << (1884 % 8));
    assert_corrupt(&err, 0, "where the kernel expects a Tensor");
}

#[test]
fn not_a_program() {
    let json = fixture("mlp.json");
    let err = PteModule::load(&json).unwrap_err();
    assert!(err.code().is_some(), "{err}");
    assert!(err.to_string().contains("mlp.json"), "{err}");
    let err =
        PteModule::from_bytes(b"#!/bin/sh\necho this is not a program\n".to_vec()).unwrap_err();
    assert!(err.code().is_some(), "{err}");
}

#[test]
fn unknown_method() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let err = m.execute("backward", &[]).unwrap_err();
    match &err {
        PteError::UnknownMethod { method, available } => {
            assert_eq!(method, "backward");
            assert!(available.contains(&"forward".to_string()));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(
        m.method_meta("backward"),
        Err(PteError::UnknownMethod { .. })
    ));
    assert!(matches!(
        m.constant_i64("nope"),
        Err(PteError::UnknownMethod { .. })
    ));
}

#[test]
fn wrong_input_count() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let x = [0f32; 16];
    let t = Tensor::f32(&x, &[2, 8]);
    let err = m.execute("forward", &[t.clone(), t]).unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputCount {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = m.execute("forward", &[]).unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputCount {
                expected: 1,
                got: 0,
                ..
            }
        ),
        "{err}"
    );
    let err = m
        .execute("get_answer", &[Tensor::f32(&x, &[2, 8])])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputCount {
                expected: 0,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_dtype() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let x = [0f64; 16];
    let err = m
        .execute("forward", &[Tensor::new(&x, &[2, 8])])
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PteError::InputDType {
                index: 0,
                expected: DType::F32,
                got: DType::F64,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "method `forward` input 0: expected dtype f32, got f64"
    );
    let mut d = PteModule::load(fixture("dynamic.pte")).unwrap();
    let tokens = [1i32, 2];
    let err = d
        .execute("forward", &[Tensor::i32(&tokens, &[1, 2])])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputDType {
                expected: DType::I64,
                got: DType::I32,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_rank_or_shape() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let x = [0f32; 16];
    let err = m.execute("forward", &[Tensor::f32(&x, &[16])]).unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputRank {
                index: 0,
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = m
        .execute("forward", &[Tensor::f32(&x, &[4, 4])])
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PteError::InputShape {
                index: 0,
                dim: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("expected shape [2, 8], got [4, 4]"),
        "{err}"
    );
    let err = m
        .execute("forward", &[Tensor::f32(&x[..15], &[2, 8])])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PteError::InputDataLength {
                expected: 16,
                got: 15,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn dynamic_dimension_past_its_bound() {
    let mut m = PteModule::load(fixture("dynamic.pte")).unwrap();
    let tokens = vec![1i64; 17];
    let err = m
        .execute("forward", &[Tensor::i64(&tokens, &[1, 17])])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PteError::DimAboveBound {
                index: 0,
                dim: 1,
                bound: 16,
                got: 17,
                ..
            }
        ),
        "{err}"
    );
    // The module still works afterwards.
    let out = m
        .execute("forward", &[Tensor::i64(&tokens[..16], &[1, 16])])
        .unwrap();
    assert_eq!(out.get(0).unwrap().shape(), &[1, 16, 12]);
}

#[test]
fn output_misuse() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let x = [0f32; 16];
    let out = m.execute("forward", &[Tensor::f32(&x, &[2, 8])]).unwrap();
    let err = out.get(0).unwrap().as_i64().unwrap_err();
    assert!(
        matches!(
            err,
            PteError::OutputDType {
                requested: DType::I64,
                actual: DType::F32,
                ..
            }
        ),
        "{err}"
    );
    let err = out.get(1).unwrap_err();
    assert!(
        matches!(
            err,
            PteError::OutputIndex {
                index: 1,
                len: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn constant_helpers_reject_non_constants() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    assert!(matches!(
        m.constant_i64("forward"),
        Err(PteError::Constant { .. })
    ));
    assert!(matches!(
        m.constant_i64("get_scale"),
        Err(PteError::Constant { .. })
    ));
    assert!(matches!(
        m.constant_f64("use_kv_cache"),
        Err(PteError::Constant { .. })
    ));
}

#[test]
fn lost_named_data_table_is_rejected() {
    // This flip in xnnpack.pte's root vtable drops the program's named data table, which holds
    // the XNNPACK weights; the backend then dereferenced a missing data map (segfault).
    let mut bytes = std::fs::read(fixture("xnnpack.pte")).unwrap();
    bytes[58] ^= 0x04;
    let err = PteModule::from_bytes(bytes).unwrap_err();
    assert!(matches!(err, PteError::CorruptProgram { .. }), "{err}");
    assert!(err.to_string().contains("is not referenced"), "{err}");
}

#[test]
fn freeing_a_planned_tensor_is_rejected() {
    // A KernelCall's type tag flipped to FreeCall: it would free tensor 2, whose null data
    // pointer the next kernel dereferenced (segfault).
    let err = corrupt_mlp(1703, 0x04);
    assert_corrupt(
        &err,
        2,
        "frees value 2, a constant or memory-planned Tensor",
    );
}

/// Fuzz-found (fuzz/crashes/pte_load): a quantize kernel with quant_min below int8's range.
/// ExecuTorch's kernel aborts the process on it (a fatal ET_CHECK); the load must refuse it.
#[test]
fn quant_range_outside_the_integer_type_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/ptecrash-crash-533a169aae223f4b7759497f84a595e8e237d643"
    );
    let err = PteModule::load(path).expect_err("a corrupt quant range must not load");
    let msg = err.to_string();
    assert!(matches!(err, PteError::CorruptProgram { .. }), "{msg}");
    assert!(msg.contains("quant range [-160, 127]"), "{msg}");
}

/// Fuzz-found: a method planning 77 GB of working memory. ExecuTorch would allocate and zero
/// it when the method loads (the kernel kills the process part-way); the load must refuse
/// it on any machine with less RAM than that.
#[test]
fn planned_memory_beyond_the_machine_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/ptecrash-oom-5a01f32037cb5adda92e1909fd902b90522cd524"
    );
    let ram: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |kib| kib * 1024);
    if ram >= 77_309_667_136 {
        return; // a machine this large may legitimately run it
    }
    let err = PteModule::load(path).expect_err("77 GB of planned memory must not load");
    let msg = err.to_string();
    assert!(msg.contains("77309667136 bytes of working memory"), "{msg}");
}

/// Fuzz-found: the (de)quantize kernels resize `out` to the input's shape and abort when they
/// cannot; an `out` of other static sizes must be refused at load.
#[test]
fn quantize_out_that_cannot_take_the_input_shape_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/ptecrash-crash-86d14c7734068a6eab38fb152cb3bd6a36080337"
    );
    let msg = PteModule::load(path)
        .expect_err("must not load")
        .to_string();
    assert!(msg.contains("cannot be resized"), "{msg}");
}

/// Fuzz-found: a MoveCall that turns a Bool value into a Tensor; the next kernel reading it as
/// a Bool would hit a fatal assert.
#[test]
fn move_between_types_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/ptecrash-crash-f1676af202427d18439a2ba62cbb7879eb7c6359"
    );
    let msg = PteModule::load(path)
        .expect_err("must not load")
        .to_string();
    assert!(
        msg.contains("moves value 1, a Tensor, into value 8, a Bool"),
        "{msg}"
    );
}

/// Fuzz-found: `aten::sym_size.int` asking for dimension 33554433 of a rank-2 tensor. The
/// prim op calls `Tensor::size(dim)` unchecked, whose assert aborts the process; the load must
/// refuse it.
#[test]
fn sym_size_dim_outside_the_rank_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/ptecrash-crash-ac658a5197226d92ba6aa4686946185965681434"
    );
    let err = PteModule::load(path).expect_err("must not load");
    let msg = err.to_string();
    assert!(matches!(err, PteError::CorruptProgram { .. }), "{msg}");
    assert!(
        msg.contains("asks for dimension 33554433 of a rank-2 tensor"),
        "{msg}"
    );
}

/// A fuzzed program hands a kernel a tensor of a quantized scalar type; ExecuTorch aborted in
/// `promoteTypes()` ("not valid for quantized dtypes"). The verifier refuses it.
#[test]
fn quantized_dtype_tensor_argument_is_rejected() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/crashes/pte_load/crash-a1433db9c6bc35a9260d31c5b2a7c51d994ff64e"
    );
    let err = PteModule::load(path).expect_err("must not load");
    let msg = err.to_string();
    assert!(matches!(err, PteError::CorruptProgram { .. }), "{msg}");
    assert!(msg.contains("of the quantized scalar type"), "{msg}");
}

/// Replaces the one occurrence of `from` in `bytes` by `to` (same length, so the flatbuffer's
/// offsets stay valid and only the name changes).
fn renamed(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("name present in the fixture");
    bytes[at..at + from.len()].copy_from_slice(to);
    bytes
}

/// An operator no kernel library registers is reported when the program loads, named as the
/// registry names it, with what to link; both load paths.
#[test]
fn missing_operator_is_named_at_load() {
    let registered = diffulex_edge::pte::registered_operators().unwrap();
    assert!(registered.iter().any(|k| k == "aten::relu.out"));
    assert!(!registered.iter().any(|k| k == "aten::relv.out"));
    let bytes = renamed(mlp_bytes(), b"aten::relu", b"aten::relv");
    let path = temp_file("missing_op.pte", &bytes);
    for err in [
        PteModule::load(&path).unwrap_err(),
        PteModule::from_bytes(bytes).unwrap_err(),
    ] {
        match &err {
            PteError::MissingOperator {
                method, operator, ..
            } => {
                assert_eq!(method, "forward");
                assert_eq!(operator, "aten::relv.out");
            }
            other => panic!("expected MissingOperator, got {other}"),
        }
        assert_eq!(err.code(), Some(ErrorCode::OperatorMissing));
        let message = err.to_string();
        assert!(message.contains("\"aten::relv.out\""), "{message}");
        assert!(
            message.contains("libexecutorch_kernels_optimized"),
            "{message}"
        );
    }
}

/// A delegate whose backend is not registered is reported at load, naming the backend and the
/// backends the runtime has.
#[test]
fn missing_backend_is_named_at_load() {
    let registered = diffulex_edge::pte::registered_backends().unwrap();
    assert!(
        registered.iter().any(|b| b == "XnnpackBackend"),
        "{registered:?}"
    );
    let bytes = std::fs::read(fixture("xnnpack.pte")).unwrap();
    let bytes = renamed(bytes, b"XnnpackBackend", b"VulkanBackend_");
    let err = PteModule::from_bytes(bytes).unwrap_err();
    match &err {
        PteError::MissingBackend {
            backend,
            registered,
            ..
        } => {
            assert_eq!(backend, "VulkanBackend_");
            assert!(registered.iter().any(|b| b == "XnnpackBackend"));
        }
        other => panic!("expected MissingBackend, got {other}"),
    }
    assert!(err.to_string().contains("XnnpackBackend"), "{err}");
}

/// The runtime says where it was loaded from, and lists the files a copy needs.
#[test]
fn runtime_reports_where_it_was_loaded_from() {
    let runtime = diffulex_edge::pte::runtime().unwrap();
    if runtime.source() == diffulex_edge::pte::RuntimeSource::Linked {
        // A source build (EXECUTORCH_SOURCE_DIR): the runtime is inside the binary.
        assert!(runtime.shim_path().is_none());
        assert!(runtime.files().is_empty(), "{:?}", runtime.files());
        return;
    }
    let shim = runtime
        .shim_path()
        .expect("the default build opens a shim library");
    assert!(shim.is_file(), "{}", shim.display());
    let names: Vec<String> = runtime
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for needed in [
        "libdiffulex_et.so",
        "libexecutorch.so",
        "libexecutorch_kernels_optimized.so",
        "libexecutorch_kernels_quantized.so",
        "libexecutorch_backend_xnnpack.so",
        "libexecutorch_threadpool.so",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} not in {names:?}"
        );
    }
}
