//! The walk over every execution plan of a program (the first pass of the verifier; why it
//! exists is told in `verify/mod.rs`).
//!
//! - every value index (plan and chain inputs/outputs, instruction arguments, list items,
//!   move/free/jump operands) is inside the plan's value table, every operator and delegate
//!   index inside its table, every jump destination inside its chain;
//! - every value has a known type tag and a payload; tensors have a known scalar type and
//!   dynamism, non-negative sizes, and a `dim_order` that is a permutation of the sizes' dims;
//!   int lists reference ints, tensor lists tensors, optional tensor lists tensors or None;
//! - freed values are tensors that are neither constant nor memory-planned; operators have
//!   names; delegates have an id, compile specs and processed data that points at an
//!   existing inline blob or segment;
//! - kernel calls to an operator whose schema is known ([`op_schemas`]) have the schema's
//!   argument count and argument types; calls to operators outside that table (custom
//!   operator libraries) get only the range checks;
//! - every XNNPACK delegate payload, inline or in a segment, passes [`xnnpack_blob::check`];
//! - every call of a scalar operator built into the runtime is well typed ([`prim_ops`]).

use std::collections::HashMap;
use std::path::PathBuf;

use super::flatbuf::{OutOfBounds, Table, Vector};
use super::op_schemas;
use super::prim_ops;
use super::segments::{self, Segments};
use super::xnnpack_blob;
use crate::pte::PteError;

/// EValue type tags of the program schema (`KernelTypes` union).
mod tag {
    pub const NULL: u8 = 1;
    pub const INT: u8 = 2;
    pub const BOOL: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const TENSOR: u8 = 5;
    pub const STRING: u8 = 6;
    pub const INT_LIST: u8 = 7;
    pub const DOUBLE_LIST: u8 = 8;
    pub const BOOL_LIST: u8 = 9;
    pub const TENSOR_LIST: u8 = 10;
    pub const OPTIONAL_TENSOR_LIST: u8 = 11;
}

/// The type's name with its article, for messages ("an Int", "a Tensor").
fn tag_name(t: u8) -> &'static str {
    match t {
        tag::NULL => "None",
        tag::INT => "an Int",
        tag::BOOL => "a Bool",
        tag::DOUBLE => "a Double",
        tag::TENSOR => "a Tensor",
        tag::STRING => "a String",
        tag::INT_LIST => "an IntList",
        tag::DOUBLE_LIST => "a DoubleList",
        tag::BOOL_LIST => "a BoolList",
        tag::TENSOR_LIST => "a TensorList",
        tag::OPTIONAL_TENSOR_LIST => "an OptionalTensorList",
        _ => "an unknown value",
    }
}

/// `ScalarType` values of ExecuTorch 1.5.1's schema (`scalar_type.fbs`).
const SCALAR_TYPES: [i8; 23] = [
    0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 22, 23, 24, 25, 26, 27, 28, 29,
];

/// Largest tensor rank accepted (ExecuTorch's `kTensorDimensionLimit` is 16).
const MAX_RANK: usize = 16;

/// Where a defect was found, for the error message.
struct Place {
    method: Option<String>,
    instruction: Option<usize>,
}

struct Checker {
    file: Option<PathBuf>,
    place: Place,
}

impl Checker {
    fn err(&self, location: String, problem: String) -> PteError {
        PteError::CorruptProgram {
            file: self.file.clone(),
            method: self.place.method.clone(),
            instruction: self.place.instruction,
            detail: format!("{location}: {problem}"),
        }
    }

    fn oob(&self, location: &str, e: OutOfBounds) -> PteError {
        self.err(location.to_string(), e.to_string())
    }
}

/// What each method needs from the runtime: operators by registry name (`aten::add.out`) and
/// delegate backends by id (`XnnpackBackend`), each with its method, in program order.
#[derive(Debug, Default)]
pub(crate) struct ProgramUses {
    /// (method, operator) pairs.
    pub operators: Vec<(String, String)>,
    /// (method, backend id) pairs.
    pub backends: Vec<(String, String)>,
}

/// Checks the program flatbuffer in `buf` (the file's first bytes, at least the flatbuffer
/// part); delegate payloads stored in segments are read from `file_bytes`. `file` only labels
/// errors. Returns the operators and backends the methods use.
pub(crate) fn check_program(
    buf: &[u8],
    file_bytes: &dyn Segments,
    file: Option<PathBuf>,
) -> Result<ProgramUses, PteError> {
    let mut c = Checker {
        file,
        place: Place {
            method: None,
            instruction: None,
        },
    };
    let program = Table::root(buf).map_err(|e| c.oob("program", e))?;
    let n = |slot, size| -> Result<usize, OutOfBounds> {
        Ok(program.vector(slot, size)?.map_or(0, |v| v.len()))
    };
    let n_inline = n(3, 4).map_err(|e| c.oob("program delegate data", e))?;
    let n_segments = n(4, 4).map_err(|e| c.oob("program segments", e))?;
    // Segments referenced by anything; an unreferenced one means a reference was lost (e.g.
    // the named data table XNNPACK reads its weights from, which it dereferences unchecked).
    let mut used = check_segment_refs(&c, program, n_segments)?;
    let payloads = Payloads {
        program,
        buf,
        file_bytes,
        named_data: named_data_sizes(&c, program)?,
    };
    let Some(plans) = program
        .vector(1, 4)
        .map_err(|e| c.oob("program execution plans", e))?
    else {
        return Ok(ProgramUses::default());
    };
    let mut uses = ProgramUses::default();
    let mut xnnpack = Vec::new();
    for p in 0..plans.len() {
        let plan = plans
            .table(p)
            .map_err(|e| c.oob(&format!("execution plan {p}"), e))?;
        let name = plan
            .string(0)
            .map_err(|e| c.oob(&format!("execution plan {p} name"), e))?;
        c.place.method = Some(name.unwrap_or_else(|| format!("<plan {p}>")));
        c.place.instruction = None;
        for payload in check_plan(&mut c, plan, n_inline, n_segments, &mut used, &mut uses)? {
            xnnpack.push((c.place.method.clone(), payload));
        }
    }
    c.place.method = None;
    c.place.instruction = None;
    if let Some(orphan) = (0..n_segments).find(|s| !used.contains(s)) {
        return Err(c.err(
            format!("segment {orphan}"),
            "is not referenced by any delegate, constant table or named data entry (a reference to it is missing)".into(),
        ));
    }
    // Payloads last: a lost reference above explains a payload's missing data better.
    for (method, payload) in xnnpack {
        c.place.method = method;
        payloads.check_xnnpack(&c, payload)?;
    }
    Ok(uses)
}

/// Named data entries (weights shared with delegates, e.g. XNNPACK's), mutable data and the
/// constant segment must name existing segments; returns the segments they use.
fn check_segment_refs(c: &Checker, program: Table<'_>, n_segments: usize) -> Checked<Vec<usize>> {
    let segment = |t: Table<'_>, slot: usize, what: &str| -> Checked<usize> {
        let idx = t.u32(slot, 0).map_err(|e| c.oob(what, e))?;
        if usize::try_from(idx).map_or(true, |i| i >= n_segments) {
            return Err(c.err(
                what.to_string(),
                format!(
                    "segment index {idx} is out of range (the program has {n_segments} segments)"
                ),
            ));
        }
        Ok(usize::try_from(idx).unwrap_or(usize::MAX))
    };
    let mut used = Vec::new();
    if let Some(named) = program.vector(7, 4).map_err(|e| c.oob("named data", e))? {
        for i in 0..named.len() {
            let what = format!("named data entry {i}");
            let entry = named.table(i).map_err(|e| c.oob(&what, e))?;
            if entry.string(0).map_err(|e| c.oob(&what, e))?.is_none() {
                return Err(c.err(what, "has no key".into()));
            }
            used.push(segment(entry, 1, &what)?);
        }
    }
    if let Some(mutable) = program
        .vector(6, 4)
        .map_err(|e| c.oob("mutable data segments", e))?
    {
        for i in 0..mutable.len() {
            let what = format!("mutable data segment entry {i}");
            let entry = mutable.table(i).map_err(|e| c.oob(&what, e))?;
            used.push(segment(entry, 0, &what)?);
        }
    }
    if let Some(constants) = program.table(5).map_err(|e| c.oob("constant segment", e))? {
        // An empty offset list means there are no constants, and no segment is needed.
        let used_by_constants = constants
            .vector(1, 8)
            .map_err(|e| c.oob("constant segment", e))?
            .is_some_and(|o| o.len() > 0);
        if used_by_constants {
            used.push(segment(constants, 0, "constant segment")?);
        }
    }
    Ok(used)
}

/// `R` with the location already attached.
type Checked<T> = Result<T, PteError>;

fn check_plan(
    c: &mut Checker,
    plan: Table<'_>,
    n_inline: usize,
    n_segments: usize,
    used_segments: &mut Vec<usize>,
    uses: &mut ProgramUses,
) -> Checked<Vec<XnnpackPayload>> {
    check_planned_memory(c, plan, total_memory())?;
    let values = plan
        .vector(2, 4)
        .map_err(|e| c.oob("value table", e))?
        .ok_or_else(|| c.err("value table".into(), "is missing".into()))?;
    // First pass: every value's type tag, so references can be checked against it.
    let mut tags = Vec::with_capacity(values.len());
    let mut payloads = Vec::with_capacity(values.len());
    for v in 0..values.len() {
        let loc = || format!("value {v}");
        let value = values.table(v).map_err(|e| c.oob(&loc(), e))?;
        let t = value.u8(0, 0).map_err(|e| c.oob(&loc(), e))?;
        if !(tag::NULL..=tag::OPTIONAL_TENSOR_LIST).contains(&t) {
            return Err(c.err(loc(), format!("has unknown type tag {t}")));
        }
        let payload = value.table(1).map_err(|e| c.oob(&loc(), e))?;
        if payload.is_none() && t != tag::NULL {
            return Err(c.err(loc(), format!("is {} without data", tag_name(t))));
        }
        tags.push(t);
        payloads.push(payload);
    }
    // Tensors a FreeCall may free: neither constant nor memory-planned (freeing those would
    // leave a null data pointer that later kernels dereference).
    let mut freeable = vec![false; tags.len()];
    // Tensors with elements but no storage at all (not constant, not memory-planned, no
    // external data): their data pointer is null unless the caller binds them as method
    // inputs, and a kernel handed one writes through it.
    let mut storageless = vec![false; tags.len()];
    for (v, (&t, payload)) in tags.iter().zip(&payloads).enumerate() {
        if let Some(payload) = payload {
            check_value(c, v, t, *payload, &tags)?;
            if t == tag::TENSOR {
                let oob = |e| c.oob(&format!("value {v} (Tensor)"), e);
                let constant = payload.u32(5, 0).map_err(oob)? != 0;
                let planned = payload.table(6).map_err(oob)?.is_some();
                let external = payload.table(9).map_err(oob)?.is_some();
                if let Some(f) = freeable.get_mut(v) {
                    *f = !constant && !planned;
                }
                if let Some(s) = storageless.get_mut(v) {
                    *s = !constant
                        && !planned
                        && !external
                        && has_elements(*payload).map_err(oob)?;
                }
            }
        }
    }
    if let Some(inputs) = plan.vector(3, 4).map_err(|e| c.oob("method inputs", e))? {
        for i in 0..inputs.len() {
            let idx = inputs.i32(i).map_err(|e| c.oob("method inputs", e))?;
            if let Some(s) = usize::try_from(idx)
                .ok()
                .and_then(|v| storageless.get_mut(v))
            {
                *s = false;
            }
        }
    }
    let index_list = |c: &Checker, slot: usize, t: Table<'_>, what: &str| -> Checked<()> {
        if let Some(list) = t.vector(slot, 4).map_err(|e| c.oob(what, e))? {
            for i in 0..list.len() {
                let idx = list.i32(i).map_err(|e| c.oob(what, e))?;
                value_index(c, &tags, idx, &format!("{what} entry {i}"))?;
            }
        }
        Ok(())
    };
    index_list(c, 3, plan, "method inputs")?;
    index_list(c, 4, plan, "method outputs")?;

    let operators = match plan.vector(6, 4).map_err(|e| c.oob("operator table", e))? {
        Some(ops) => ops,
        None => empty_tables(),
    };
    let mut op_names = Vec::with_capacity(operators.len());
    for o in 0..operators.len() {
        let loc = || format!("operator {o}");
        let op = operators.table(o).map_err(|e| c.oob(&loc(), e))?;
        let name = op
            .string(0)
            .map_err(|e| c.oob(&loc(), e))?
            .ok_or_else(|| c.err(loc(), "has no name".into()))?;
        let overload = op.string(1).map_err(|e| c.oob(&loc(), e))?;
        op_names.push(match overload {
            Some(o) if !o.is_empty() => format!("{name}.{o}"),
            _ => name,
        });
    }
    let method = c.place.method.clone().unwrap_or_default();
    for op in &op_names {
        uses.operators.push((method.clone(), op.clone()));
    }
    let (n_delegates, xnnpack) = check_delegates(c, plan, n_inline, n_segments, used_segments)?;
    if let Some(delegates) = plan.vector(7, 4).map_err(|e| c.oob("delegate table", e))? {
        for d in 0..delegates.len() {
            let delegate = delegates
                .table(d)
                .map_err(|e| c.oob(&format!("delegate {d}"), e))?;
            if let Some(id) = delegate
                .string(0)
                .map_err(|e| c.oob(&format!("delegate {d}"), e))?
            {
                uses.backends.push((method.clone(), id));
            }
        }
    }
    // Fewest arguments each delegate is called with (its payload's external ids index them).
    let mut call_args: Vec<Option<usize>> = vec![None; n_delegates];

    let chains = plan
        .vector(5, 4)
        .map_err(|e| c.oob("chains", e))?
        .unwrap_or_else(empty_tables);
    for ch in 0..chains.len() {
        let chain = chains
            .table(ch)
            .map_err(|e| c.oob(&format!("chain {ch}"), e))?;
        index_list(c, 0, chain, &format!("chain {ch} inputs"))?;
        index_list(c, 1, chain, &format!("chain {ch} outputs"))?;
        let Some(instructions) = chain
            .vector(2, 4)
            .map_err(|e| c.oob(&format!("chain {ch} instructions"), e))?
        else {
            continue;
        };
        for i in 0..instructions.len() {
            c.place.instruction = Some(i);
            let tables = Tables {
                tags: &tags,
                freeable: &freeable,
                storageless: &storageless,
                payloads: &payloads,
                op_names: &op_names,
                n_delegates,
            };
            check_instruction(c, &tables, instructions, ch, i)?;
            if let Some((d, n)) = delegate_call(instructions, i) {
                if let Some(slot) = call_args.get_mut(d) {
                    *slot = Some(slot.map_or(n, |m| m.min(n)));
                }
            }
        }
        c.place.instruction = None;
    }
    check_prim_calls(c, plan, chains, &tags, &payloads, &op_names)?;
    let mut xnnpack = xnnpack;
    for payload in &mut xnnpack {
        payload.call_args = call_args.get(payload.delegate).copied().flatten();
    }
    Ok(xnnpack)
}

/// Runs [`prim_ops::check`] on every kernel call of an already checked plan. The facts it
/// needs include which Int values are written at run time: method inputs, the `out` (last)
/// argument of every kernel call, every delegate call argument and every move destination.
fn check_prim_calls(
    c: &mut Checker,
    plan: Table<'_>,
    chains: Vector<'_>,
    tags: &[u8],
    payloads: &[Option<Table<'_>>],
    op_names: &[String],
) -> Checked<()> {
    // Every read below was already made (and bounds-checked) by the first pass, so a failure
    // here cannot happen; it is skipped rather than reported twice.
    let mut written = vec![false; tags.len()];
    let mut mark = |v: i32| {
        if let Some(w) = usize::try_from(v).ok().and_then(|v| written.get_mut(v)) {
            *w = true;
        }
    };
    if let Some(inputs) = plan.vector(3, 4).ok().flatten() {
        (0..inputs.len())
            .filter_map(|i| inputs.i32(i).ok())
            .for_each(&mut mark);
    }
    let mut calls = Vec::new();
    for ch in 0..chains.len() {
        let Some(instructions) = chains
            .table(ch)
            .ok()
            .and_then(|t| t.vector(2, 4).ok().flatten())
        else {
            continue;
        };
        for i in 0..instructions.len() {
            let Some(instruction) = instructions.table(i).ok() else {
                continue;
            };
            let kind = instruction.u8(0, 0).unwrap_or(0);
            let Some(args) = instruction.table(1).ok().flatten() else {
                continue;
            };
            let list: Vec<i32> = match args.vector(1, 4).ok().flatten() {
                Some(l) if matches!(kind, KERNEL_CALL | DELEGATE_CALL) => {
                    (0..l.len()).filter_map(|a| l.i32(a).ok()).collect()
                }
                _ => Vec::new(),
            };
            match kind {
                KERNEL_CALL => {
                    if let Some(&out) = list.last() {
                        mark(out);
                    }
                    calls.push((ch, i, args.i32(0, 0).unwrap_or(-1), list));
                }
                DELEGATE_CALL => list.iter().copied().for_each(&mut mark),
                MOVE_CALL => {
                    if let Ok(to) = args.i32(1, 0) {
                        mark(to);
                    }
                }
                _ => {}
            }
        }
    }
    let facts: Vec<prim_ops::Fact> = tags
        .iter()
        .zip(payloads)
        .zip(&written)
        .map(|((&t, payload), &w)| match (t, payload) {
            (tag::INT, Some(p)) => prim_ops::Fact::Int {
                fixed: if w {
                    None
                } else {
                    p.u64(0, 0).ok().map(|bits| bits as i64)
                },
            },
            (tag::DOUBLE, _) => prim_ops::Fact::Double,
            (tag::BOOL, _) => prim_ops::Fact::Bool,
            (tag::TENSOR, Some(p)) => prim_ops::Fact::Tensor {
                rank: p.vector(2, 4).ok().flatten().map_or(0, |v| v.len()),
                dtype: p.u8(0, 0).map_or(-1, |d| d as i8),
            },
            _ => prim_ops::Fact::Other,
        })
        .collect();
    for (ch, i, op, list) in calls {
        let Some(name) = usize::try_from(op).ok().and_then(|o| op_names.get(o)) else {
            continue;
        };
        let args: Vec<usize> = list
            .iter()
            .filter_map(|&v| usize::try_from(v).ok())
            .collect();
        if let Err(problem) = prim_ops::check(name, &args, &facts) {
            c.place.instruction = Some(i);
            return Err(c.err(format!("chain {ch} instruction {i} ({name})"), problem));
        }
    }
    Ok(())
}

/// The delegate index and argument count of instruction `i`, if it is a (checked) delegate call.
fn delegate_call(instructions: Vector<'_>, i: usize) -> Option<(usize, usize)> {
    let instruction = instructions.table(i).ok()?;
    if instruction.u8(0, 0).ok()? != DELEGATE_CALL {
        return None;
    }
    let args = instruction.table(1).ok()??;
    let d = usize::try_from(args.i32(0, 0).ok()?).ok()?;
    let n = args.vector(1, 4).ok()?.map_or(0, |v| v.len());
    Some((d, n))
}

/// Byte size of each named data entry (key -> its segment's size): what XNNPACK can load by key.
fn named_data_sizes(c: &Checker, program: Table<'_>) -> Checked<HashMap<String, u64>> {
    let mut sizes = HashMap::new();
    let Some(named) = program.vector(7, 4).map_err(|e| c.oob("named data", e))? else {
        return Ok(sizes);
    };
    let segments = program
        .vector(4, 4)
        .map_err(|e| c.oob("program segments", e))?
        .unwrap_or_else(empty_tables);
    for i in 0..named.len() {
        let what = format!("named data entry {i}");
        let oob = |e| c.oob(&what, e);
        let entry = named.table(i).map_err(oob)?;
        let key = entry.string(0).map_err(oob)?.unwrap_or_default();
        let index = entry.u32(1, 0).map_err(oob)? as usize;
        // The index was range-checked by `check_segment_refs`.
        let segment = segments.table(index).map_err(oob)?;
        sizes.insert(key, segment.u64(1, 0).map_err(oob)?);
    }
    Ok(sizes)
}

/// An XNNPACK delegate of the current plan and where its payload is.
struct XnnpackPayload {
    delegate: usize,
    /// 0: inline delegate data, 1: segment.
    location: u8,
    index: usize,
    /// Fewest arguments a call of the delegate passes (`None`: never called).
    call_args: Option<usize>,
}

/// What is needed to fetch and check delegate payloads.
struct Payloads<'p> {
    program: Table<'p>,
    buf: &'p [u8],
    file_bytes: &'p dyn Segments,
    named_data: HashMap<String, u64>,
}

impl Payloads<'_> {
    fn check_xnnpack(&self, c: &Checker, payload: XnnpackPayload) -> Checked<()> {
        let loc = format!(
            "delegate {} ({})",
            payload.delegate,
            xnnpack_blob::BACKEND_ID
        );
        let ctx = xnnpack_blob::Context {
            named_data: &self.named_data,
            call_args: payload.call_args,
        };
        let result = if payload.location == 0 {
            let inline = self
                .program
                .vector(3, 4)
                .and_then(|v| v.unwrap_or_else(empty_tables).table(payload.index))
                .and_then(|t| t.vector(0, 1))
                .map_err(|e| c.oob(&loc, e))?
                .ok_or_else(|| c.err(loc.clone(), "inline payload has no data".into()))?;
            let bytes = inline.bytes();
            xnnpack_blob::check(bytes, bytes.len() as u64, &ctx)
        } else {
            let (prefix, len) = self.read_segment(c, &loc, payload.index)?;
            xnnpack_blob::check(&prefix, len, &ctx)
        };
        result.map_err(|d| c.err(format!("{loc} payload {}", d.location), d.problem))
    }

    /// The checked prefix of segment `index` and the segment's full length.
    fn read_segment(&self, c: &Checker, loc: &str, index: usize) -> Checked<(Vec<u8>, u64)> {
        let oob = |e| c.oob(loc, e);
        let segment = self
            .program
            .vector(4, 4)
            .map_err(oob)?
            .unwrap_or_else(empty_tables)
            .table(index)
            .map_err(oob)?;
        let offset = segment.u64(0, 0).map_err(oob)?;
        let len = segment.u64(1, 0).map_err(oob)?;
        let file_len = self.file_bytes.file_len();
        let start = segments::segment_base(self.buf).and_then(|b| b.checked_add(offset));
        let Some(start) = start.filter(|s| s.checked_add(len).is_some_and(|e| e <= file_len))
        else {
            return Err(c.err(
                loc.to_string(),
                format!(
                    "payload segment {index} ({offset}+{len}) lies outside the {file_len}-byte file"
                ),
            ));
        };
        let read = |n: u64| {
            self.file_bytes.read(start, n).map_err(|e| {
                c.err(
                    loc.to_string(),
                    format!("payload segment {index} could not be read: {e}"),
                )
            })
        };
        let head = read(len.min(xnnpack_blob::HEADER_LEN as u64))?;
        let needed = xnnpack_blob::needed_prefix(&head, len);
        let prefix = if needed <= head.len() as u64 {
            head
        } else {
            read(needed)?
        };
        Ok((prefix, len))
    }
}

/// A stand-in for an absent vector of tables.
fn empty_tables<'a>() -> Vector<'a> {
    Vector::empty()
}

fn value_index(c: &Checker, tags: &[u8], idx: i32, what: &str) -> Checked<usize> {
    usize::try_from(idx)
        .ok()
        .filter(|&i| i < tags.len())
        .ok_or_else(|| {
            c.err(
                what.to_string(),
                format!(
                    "value index {idx} is out of range (the method has {} values)",
                    tags.len()
                ),
            )
        })
}

fn check_value(c: &Checker, v: usize, t: u8, payload: Table<'_>, tags: &[u8]) -> Checked<()> {
    let loc = format!(
        "value {v} ({})",
        tag_name(t)
            .trim_start_matches("an ")
            .trim_start_matches("a ")
    );
    let oob = |e| c.oob(&loc, e);
    let items_refer_to = |allowed: &[u8], allow_minus_one: bool| -> Checked<()> {
        let items = payload
            .vector(0, 4)
            .map_err(oob)?
            .ok_or_else(|| c.err(loc.clone(), "has no items".into()))?;
        for i in 0..items.len() {
            let idx = items.i32(i).map_err(oob)?;
            if allow_minus_one && idx == -1 {
                continue;
            }
            let target = value_index(c, tags, idx, &format!("{loc} item {i}"))?;
            let got = tags.get(target).copied().unwrap_or(0);
            if !allowed.contains(&got) {
                return Err(c.err(
                    format!("{loc} item {i}"),
                    format!("refers to value {target}, {}", tag_name(got)),
                ));
            }
        }
        Ok(())
    };
    match t {
        tag::TENSOR => check_tensor(c, &loc, payload),
        // IntList items are value indices (boxed ints), read with toInt() at execution.
        tag::INT_LIST => {
            let items = payload
                .vector(0, 8)
                .map_err(oob)?
                .ok_or_else(|| c.err(loc.clone(), "has no items".into()))?;
            for i in 0..items.len() {
                let idx = items.i64(i).map_err(oob)?;
                let target = i32::try_from(idx).unwrap_or(-1);
                let target = value_index(c, tags, target, &format!("{loc} item {i}"))?;
                let got = tags.get(target).copied().unwrap_or(0);
                if got != tag::INT {
                    return Err(c.err(
                        format!("{loc} item {i}"),
                        format!("refers to value {target}, {}, not an Int", tag_name(got)),
                    ));
                }
            }
            Ok(())
        }
        tag::TENSOR_LIST => items_refer_to(&[tag::TENSOR], false),
        tag::OPTIONAL_TENSOR_LIST => items_refer_to(&[tag::TENSOR, tag::NULL], true),
        tag::STRING | tag::DOUBLE_LIST | tag::BOOL_LIST => {
            let size = if t == tag::DOUBLE_LIST { 8 } else { 1 };
            payload
                .vector(0, size)
                .map_err(oob)?
                .ok_or_else(|| c.err(loc.clone(), "has no data".into()))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_tensor(c: &Checker, loc: &str, t: Table<'_>) -> Checked<()> {
    let oob = |e| c.oob(loc, e);
    let bad = |problem: String| c.err(loc.to_string(), problem);
    let scalar_type = t.u8(0, 0).map_err(oob)? as i8;
    if !SCALAR_TYPES.contains(&scalar_type) {
        return Err(bad(format!("has unknown scalar type {scalar_type}")));
    }
    let dynamism = t.u8(8, 0).map_err(oob)?;
    if dynamism > 2 {
        return Err(bad(format!("has unknown shape dynamism {dynamism}")));
    }
    let sizes = t
        .vector(2, 4)
        .map_err(oob)?
        .ok_or_else(|| bad("has no sizes".into()))?;
    let dim_order = t
        .vector(3, 1)
        .map_err(oob)?
        .ok_or_else(|| bad("has no dim_order".into()))?;
    let rank = sizes.len();
    if rank > MAX_RANK {
        return Err(bad(format!("has rank {rank}, above {MAX_RANK}")));
    }
    if dim_order.len() != rank {
        return Err(bad(format!(
            "has {} dim_order entries for {rank} sizes",
            dim_order.len()
        )));
    }
    let mut seen = [false; MAX_RANK];
    for d in 0..rank {
        let size = sizes.i32(d).map_err(oob)?;
        if size < 0 {
            return Err(bad(format!("has negative size {size} in dimension {d}")));
        }
        let dim = usize::from(dim_order.u8(d).map_err(oob)?);
        match seen.get_mut(dim) {
            Some(s) if dim < rank && !*s => *s = true,
            _ => {
                return Err(bad(format!(
                    "dim_order is not a permutation of 0..{rank} (entry {d} is {dim})"
                )))
            }
        }
    }
    Ok(())
}

/// Checks the delegate table; returns its length and the XNNPACK delegates' payloads.
fn check_delegates(
    c: &Checker,
    plan: Table<'_>,
    n_inline: usize,
    n_segments: usize,
    used_segments: &mut Vec<usize>,
) -> Checked<(usize, Vec<XnnpackPayload>)> {
    let mut xnnpack = Vec::new();
    let Some(delegates) = plan.vector(7, 4).map_err(|e| c.oob("delegate table", e))? else {
        return Ok((0, xnnpack));
    };
    for d in 0..delegates.len() {
        let loc = format!("delegate {d}");
        let oob = |e| c.oob(&loc, e);
        let bad = |problem: &str| c.err(loc.clone(), problem.to_string());
        let delegate = delegates.table(d).map_err(oob)?;
        let backend = delegate
            .string(0)
            .map_err(oob)?
            .ok_or_else(|| bad("has no backend id"))?;
        let processed = delegate
            .table(1)
            .map_err(oob)?
            .ok_or_else(|| bad("has no processed data reference"))?;
        let location = processed.u8(0, 0).map_err(oob)?;
        let index = usize::try_from(processed.u32(1, 0).map_err(oob)?).unwrap_or(usize::MAX);
        let (what, len) = match location {
            0 => ("inline delegate blobs", n_inline),
            1 => ("segments", n_segments),
            other => return Err(bad(&format!("has unknown data location {other}"))),
        };
        if index >= len {
            return Err(bad(&format!(
                "processed data index {index} is out of range (the program has {len} {what})"
            )));
        }
        if location == 1 {
            used_segments.push(index);
        }
        if backend == xnnpack_blob::BACKEND_ID {
            xnnpack.push(XnnpackPayload {
                delegate: d,
                location,
                index,
                call_args: None,
            });
        }
        let specs = delegate
            .vector(2, 4)
            .map_err(oob)?
            .ok_or_else(|| bad("has no compile specs list"))?;
        for s in 0..specs.len() {
            let spec = specs.table(s).map_err(oob)?;
            let key = spec.string(0).map_err(oob)?;
            let value = spec.vector(1, 1).map_err(oob)?;
            if key.is_none() || value.is_none() {
                return Err(bad(&format!("compile spec {s} lacks its key or value")));
            }
        }
    }
    Ok((delegates.len(), xnnpack))
}

/// Union tags of `InstructionArguments`.
const KERNEL_CALL: u8 = 1;
const DELEGATE_CALL: u8 = 2;
const MOVE_CALL: u8 = 3;
const JUMP_FALSE_CALL: u8 = 4;
const FREE_CALL: u8 = 5;

/// What instructions are checked against.
struct Tables<'t> {
    tags: &'t [u8],
    freeable: &'t [bool],
    storageless: &'t [bool],
    payloads: &'t [Option<Table<'t>>],
    op_names: &'t [String],
    n_delegates: usize,
}

fn check_instruction(
    c: &Checker,
    tables: &Tables<'_>,
    instructions: Vector<'_>,
    ch: usize,
    i: usize,
) -> Checked<()> {
    let Tables {
        tags,
        freeable,
        storageless,
        payloads,
        op_names,
        n_delegates,
    } = *tables;
    let loc = format!("chain {ch} instruction {i}");
    let oob = |e| c.oob(&loc, e);
    let bad = |problem: String| c.err(loc.clone(), problem);
    let instruction = instructions.table(i).map_err(oob)?;
    let kind = instruction.u8(0, 0).map_err(oob)?;
    let args = instruction
        .table(1)
        .map_err(oob)?
        .ok_or_else(|| bad(format!("has no arguments (type tag {kind})")))?;
    let value = |slot: usize, what: &str| -> Checked<usize> {
        let idx = args.i32(slot, 0).map_err(oob)?;
        value_index(c, tags, idx, &format!("{loc} {what}"))
    };
    let arg_list = |what: &str| -> Checked<Vec<usize>> {
        let Some(list) = args.vector(1, 4).map_err(oob)? else {
            return Ok(Vec::new());
        };
        (0..list.len())
            .map(|a| {
                let idx = list.i32(a).map_err(oob)?;
                value_index(c, tags, idx, &format!("{loc} ({what}) argument {a}"))
            })
            .collect()
    };
    match kind {
        KERNEL_CALL => {
            let op = args.i32(0, 0).map_err(oob)?;
            let name = usize::try_from(op)
                .ok()
                .and_then(|o| op_names.get(o))
                .ok_or_else(|| {
                    bad(format!(
                        "operator index {op} is out of range (the method has {} operators)",
                        op_names.len()
                    ))
                })?;
            let arg_values = arg_list(name)?;
            check_kernel_args(c, &loc, name, &arg_values, tags)?;
            check_arg_storage(c, &loc, name, &arg_values, tags, storageless, payloads)?;
            check_quant_range(c, &loc, name, &arg_values, tags, payloads)
        }
        DELEGATE_CALL => {
            let d = args.i32(0, 0).map_err(oob)?;
            if usize::try_from(d).map_or(true, |d| d >= n_delegates) {
                return Err(bad(format!(
                    "delegate index {d} is out of range (the method has {n_delegates} delegates)"
                )));
            }
            arg_list("delegate call").map(drop)
        }
        MOVE_CALL => {
            // A move overwrites the destination's EValue, type included: a later kernel that
            // was checked against the destination's declared type would then hit a fatal
            // toBool()/toTensor() assert. Moves only ever copy between values of one type.
            let from = value(0, "move source")?;
            let to = value(1, "move destination")?;
            let (tf, tt) = (tags.get(from).copied(), tags.get(to).copied());
            if tf != tt {
                return Err(bad(format!(
                    "moves value {from}, {}, into value {to}, {}",
                    tag_name(tf.unwrap_or(0)),
                    tag_name(tt.unwrap_or(0))
                )));
            }
            Ok(())
        }
        JUMP_FALSE_CALL => {
            // The runtime reads the condition with toBool() unless it is a Tensor: anything
            // else is a fatal assert.
            let cond = value(0, "jump condition")?;
            if !matches!(tags.get(cond), Some(&tag::BOOL) | Some(&tag::TENSOR)) {
                return Err(bad(format!(
                    "jump condition is value {cond}, {}, not a Bool or a Tensor",
                    tag_name(tags.get(cond).copied().unwrap_or(0))
                )));
            }
            let dest = args.i32(1, 0).map_err(oob)?;
            if usize::try_from(dest).map_or(true, |d| d >= instructions.len()) {
                return Err(bad(format!(
                    "jump destination {dest} is out of range (the chain has {} instructions)",
                    instructions.len()
                )));
            }
            Ok(())
        }
        FREE_CALL => {
            let v = value(0, "freed value")?;
            match tags.get(v) {
                Some(&tag::TENSOR) if freeable.get(v) == Some(&true) => Ok(()),
                Some(&tag::TENSOR) => Err(bad(format!(
                    "frees value {v}, a constant or memory-planned Tensor"
                ))),
                other => Err(bad(format!(
                    "frees value {v}, {}, not a Tensor",
                    tag_name(other.copied().unwrap_or(0))
                ))),
            }
        }
        other => Err(bad(format!("has unknown instruction type {other}"))),
    }
}

/// The machine's physical memory in bytes (`MemTotal` of /proc/meminfo), where known.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The planned working memory of a method (`non_const_buffer_sizes`) is allocated and zeroed
/// when the method loads. A size read from a damaged file can be petabytes (the allocation
/// then fails or aborts) or merely more than the machine has (the kernel grants it lazily
/// and the process is killed while zeroing it), so sizes must be non-negative and their sum
/// at most the physical memory.
fn check_planned_memory(c: &Checker, plan: Table<'_>, limit: Option<u64>) -> Checked<()> {
    let oob = |e| c.oob("planned buffer sizes", e);
    let Some(sizes) = plan.vector(8, 8).map_err(oob)? else {
        return Ok(());
    };
    let mut total: u64 = 0;
    for i in 0..sizes.len() {
        let size = sizes.i64(i).map_err(oob)?;
        let size = u64::try_from(size).map_err(|_| {
            c.err(
                format!("planned buffer {i}"),
                format!("has negative size {size}"),
            )
        })?;
        total = total.saturating_add(size);
    }
    match limit {
        Some(limit) if total > limit => Err(c.err(
            "planned buffers".into(),
            format!(
                "need {total} bytes of working memory, more than this machine's {limit} bytes \
                 of RAM (re-export with a smaller max_seq_len, or the file is damaged)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Positions of (quant_min, quant_max, dtype) in the quantize/dequantize kernels' arguments.
fn quant_range_args(op: &str) -> Option<(usize, usize, usize)> {
    let base = op.strip_prefix("quantized_decomposed::")?;
    let base = base.split('.').next().unwrap_or(base);
    match base {
        "quantize_per_tensor" | "dequantize_per_tensor" => Some((3, 4, 5)),
        "quantize_per_channel" | "dequantize_per_channel" => Some((4, 5, 6)),
        _ => None,
    }
}

/// Integer range of a quantized `ScalarType` (Byte, Char, Short, Int, UInt16).
fn quant_dtype_range(dtype: i64) -> Option<(i64, i64)> {
    match dtype {
        0 => Some((0, 255)),
        1 => Some((-128, 127)),
        2 => Some((-32768, 32767)),
        3 => Some((i32::MIN as i64, i32::MAX as i64)),
        27 => Some((0, 65535)),
        _ => None,
    }
}

/// The quantize/dequantize kernels abort the process (a fatal `ET_CHECK`) when quant_min or
/// quant_max lies outside the target integer type; check constant arguments here instead.
fn check_quant_range(
    c: &Checker,
    loc: &str,
    op: &str,
    args: &[usize],
    tags: &[u8],
    payloads: &[Option<Table<'_>>],
) -> Checked<()> {
    let Some((lo_at, hi_at, dtype_at)) = quant_range_args(op) else {
        return Ok(());
    };
    check_out_fits_input(c, loc, op, args, tags, payloads)?;
    let int_arg = |a: usize| -> Checked<Option<i64>> {
        let Some(&v) = args.get(a) else {
            return Ok(None);
        };
        match (tags.get(v), payloads.get(v)) {
            (Some(&tag::INT), Some(Some(t))) => {
                let bits = t.u64(0, 0).map_err(|e| c.oob(&format!("value {v}"), e))?;
                Ok(Some(bits as i64))
            }
            _ => Ok(None),
        }
    };
    let (Some(lo), Some(hi), Some(dtype)) = (int_arg(lo_at)?, int_arg(hi_at)?, int_arg(dtype_at)?)
    else {
        return Ok(());
    };
    let Some((min, max)) = quant_dtype_range(dtype) else {
        return Err(c.err(
            loc.to_string(),
            format!("{op} quantizes to scalar type {dtype}, not an integer type it supports"),
        ));
    };
    if lo < min || hi > max || lo > hi {
        return Err(c.err(
            loc.to_string(),
            format!(
                "{op} has quant range [{lo}, {hi}], outside [{min}, {max}] of scalar type {dtype}"
            ),
        ));
    }
    Ok(())
}

/// The (de)quantize kernels resize their `out` tensor to the input's shape and abort (a
/// fatal `ET_CHECK`) when that fails: a static `out` must have the input's sizes, a bounded
/// dynamic one at least its number of elements.
fn check_out_fits_input(
    c: &Checker,
    loc: &str,
    op: &str,
    args: &[usize],
    tags: &[u8],
    payloads: &[Option<Table<'_>>],
) -> Checked<()> {
    let tensor = |v: usize| match (tags.get(v), payloads.get(v)) {
        (Some(&tag::TENSOR), Some(Some(t))) => Some(*t),
        _ => None,
    };
    let (Some(&input), Some(&out)) = (args.first(), args.last()) else {
        return Ok(());
    };
    let (Some(input_t), Some(out_t)) = (tensor(input), tensor(out)) else {
        return Ok(());
    };
    let oob = |e| c.oob(loc, e);
    let sizes = |t: Table<'_>| -> Checked<Vec<i64>> {
        let Some(v) = t.vector(2, 4).map_err(oob)? else {
            return Ok(Vec::new());
        };
        (0..v.len())
            .map(|i| v.i32(i).map(i64::from).map_err(oob))
            .collect()
    };
    let (in_sizes, out_sizes) = (sizes(input_t)?, sizes(out_t)?);
    let numel = |s: &[i64]| s.iter().try_fold(1i64, |a, &d| a.checked_mul(d.max(0)));
    let fits = if out_t.u8(8, 0).map_err(oob)? == 0 {
        in_sizes == out_sizes
    } else {
        matches!((numel(&in_sizes), numel(&out_sizes)), (Some(i), Some(o)) if o >= i)
    };
    if fits {
        Ok(())
    } else {
        Err(c.err(
            loc.to_string(),
            format!(
                "{op} writes an input of sizes {in_sizes:?} into out value {out} of sizes \
                 {out_sizes:?}, which cannot be resized to it"
            ),
        ))
    }
}

/// Whether a tensor's sizes multiply to more than zero elements.
fn has_elements(tensor: Table<'_>) -> Result<bool, OutOfBounds> {
    let Some(sizes) = tensor.vector(2, 4)? else {
        return Ok(false);
    };
    for d in 0..sizes.len() {
        if sizes.i32(d)? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Rejects a kernel call that is handed a tensor without storage, directly or inside a
/// tensor list: the kernel would read or write through a null data pointer.
fn check_arg_storage(
    c: &Checker,
    loc: &str,
    op: &str,
    args: &[usize],
    tags: &[u8],
    storageless: &[bool],
    payloads: &[Option<Table<'_>>],
) -> Checked<()> {
    let bad = |a: usize, v: usize, how: &str| {
        c.err(
            loc.to_string(),
            format!(
                "{op} argument {a}{how} is value {v}, a Tensor with no storage (neither constant, \
                 memory-planned, external nor a method input)"
            ),
        )
    };
    for (a, &v) in args.iter().enumerate() {
        if storageless.get(v) == Some(&true) {
            return Err(bad(a, v, ""));
        }
        let is_list = matches!(
            tags.get(v),
            Some(&tag::TENSOR_LIST) | Some(&tag::OPTIONAL_TENSOR_LIST)
        );
        if let (true, Some(Some(list))) = (is_list, payloads.get(v)) {
            let oob = |e| c.oob(&format!("value {v}"), e);
            if let Some(items) = list.vector(0, 4).map_err(oob)? {
                for i in 0..items.len() {
                    let item = items.i32(i).map_err(oob)?;
                    if let Some(true) = usize::try_from(item).ok().and_then(|t| storageless.get(t))
                    {
                        return Err(bad(a, item as usize, &format!(" (list item {i})")));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_kernel_args(c: &Checker, loc: &str, op: &str, args: &[usize], tags: &[u8]) -> Checked<()> {
    let Some(schema) = op_schemas::lookup(op) else {
        return Ok(());
    };
    if schema.len() != args.len() {
        return Err(c.err(
            format!("{loc} ({op})"),
            format!(
                "passes {} arguments, the operator takes {}",
                args.len(),
                schema.len()
            ),
        ));
    }
    for (a, (&kind, &v)) in schema.as_bytes().iter().zip(args).enumerate() {
        let got = tags.get(v).copied().unwrap_or(0);
        if !op_schemas::accepts(kind, got) {
            return Err(c.err(
                format!("{loc} ({op}) argument {a}"),
                format!(
                    "is value {v}, {}, where the kernel expects {}",
                    tag_name(got),
                    op_schemas::describe(kind)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pte::verify::segments::InMemory;

    fn mlp() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/basic/mlp.pte"
        ))
        .unwrap()
    }

    #[test]
    fn accepts_an_exported_program() {
        let b = mlp();
        check_program(&b, &InMemory(&b), None).unwrap();
    }

    /// Arbitrary bytes give `Ok` or an error, never a panic (debug builds also trap overflow).
    #[test]
    fn never_panics_on_corrupted_bytes() {
        let original = mlp();
        let mut caught = 0;
        for pos in 0..original.len() {
            for value in [0x00, 0xff, original[pos] ^ 0x80, original[pos] ^ 0x01] {
                let mut bytes = original.clone();
                bytes[pos] = value;
                caught += usize::from(check_program(&bytes, &InMemory(&bytes), None).is_err());
            }
        }
        for keep in 0..original.len() {
            let _ = check_program(&original[..keep], &InMemory(&original[..keep]), None);
        }
        assert!(caught > 0);
    }
}
