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

use planus::errors::ErrorKind;
use planus::{ReadAsRoot, Vector, VectorRead};

use super::flatbuf;
use super::op_schemas;
use super::prim_ops;
use super::schema::et;
use super::segments::{self, Segments};
use super::xnnpack_blob;
use crate::pte::PteError;

/// EValue type tags of the program schema (`KernelTypes` union), as `op_schemas` uses them.
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

/// The tag of a value's union member.
fn tag_of(value: &et::KernelTypesRef<'_>) -> u8 {
    use et::KernelTypesRef as K;
    match value {
        K::Null(_) => tag::NULL,
        K::Int(_) => tag::INT,
        K::Bool(_) => tag::BOOL,
        K::Double(_) => tag::DOUBLE,
        K::Tensor(_) => tag::TENSOR,
        K::String(_) => tag::STRING,
        K::IntList(_) => tag::INT_LIST,
        K::DoubleList(_) => tag::DOUBLE_LIST,
        K::BoolList(_) => tag::BOOL_LIST,
        K::TensorList(_) => tag::TENSOR_LIST,
        K::OptionalTensorList(_) => tag::OPTIONAL_TENSOR_LIST,
    }
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

/// A string field; bytes that are not UTF-8 give U+FFFD, as ExecuTorch compares names as bytes
/// (a damaged operator name is then reported as a missing operator, not as unreadable).
fn text(field: planus::Result<Option<&str>>) -> planus::Result<Option<String>> {
    match field {
        Ok(s) => Ok(s.map(str::to_string)),
        Err(e) if matches!(e.error_kind, ErrorKind::InvalidUtf8 { .. }) => {
            Ok(Some(char::REPLACEMENT_CHARACTER.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Largest tensor rank accepted (ExecuTorch's `kTensorDimensionLimit` is 16).
const MAX_RANK: usize = 16;

/// The elements of an optional vector field (none when it is absent).
fn items<'a, T: VectorRead<'a> + 'a>(v: Option<Vector<'a, T>>) -> impl Iterator<Item = T> + 'a {
    v.into_iter().flat_map(|v| v.iter())
}

/// The tag of value `v` of plan `p` when planus read no member: planus reads a union whose
/// tag has no table as absent, but ExecuTorch 1.5.1 accepts a `Null` tag without a table and
/// dereferences the missing table of every other tag, so the two must be told apart. Read
/// directly: `Program.execution_plan` (field 1), `ExecutionPlan.values` (field 2),
/// `EValue.val_type` (field 0) of `program.fbs`.
fn tag_without_table(buf: &[u8], p: usize, v: usize) -> u8 {
    let tag = || -> Result<u8, flatbuf::OutOfBounds> {
        let Some(plans) = flatbuf::Table::root(buf)?.vector(1, 4)? else {
            return Ok(0);
        };
        let Some(values) = plans.table(p)?.vector(2, 4)? else {
            return Ok(0);
        };
        values.table(v)?.u8(0, 0)
    };
    tag().unwrap_or(0)
}

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

    /// A read the generated reader refused (an offset or length outside the buffer, bad UTF-8).
    fn read(&self, location: &str, e: planus::Error) -> PteError {
        self.err(location.to_string(), format!("cannot be read ({e})"))
    }
}

/// Attaches the location to a read the generated reader refused.
trait At<T> {
    fn at(self, c: &Checker, location: &str) -> Checked<T>;
}

impl<T> At<T> for planus::Result<T> {
    fn at(self, c: &Checker, location: &str) -> Checked<T> {
        self.map_err(|e| c.read(location, e))
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
    /// Named data under [`EMBEDDED_PREFIX`] (files `diffulex-export --embed-tokenizer` stores),
    /// with where their bytes are in the file.
    pub embedded: Vec<NamedBlob>,
    /// The key of every named data entry, in program order: all of them, not only the
    /// [`EMBEDDED_PREFIX`] ones (XNNPACK's weights are there under the SHA-256 hex of their
    /// bytes, their scales under `scale_` and a hash).
    pub named_keys: Vec<String>,
    /// Per method: the shape dynamism of each input and output, as the shim numbers it (0
    /// static, 1 bounded, 2 unbounded, -1 not a tensor). Read here so that a method's metadata
    /// needs no method load (which initialises its delegates: XNNPACK packs every weight).
    pub io_dynamism: Vec<(String, IoDynamism)>,
}

/// The shape dynamism of a method's inputs and outputs (see [`ProgramUses::io_dynamism`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct IoDynamism {
    /// One per method input.
    pub inputs: Vec<i32>,
    /// One per method output.
    pub outputs: Vec<i32>,
}

/// Key prefix of the files DiffuLex embeds in a program as named data.
pub(crate) const EMBEDDED_PREFIX: &str = "diffulex/";

/// A named data entry's bytes: `size` bytes at absolute file offset `offset`, inside the file
/// (checked when the program was verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedBlob {
    /// The entry's key, with its prefix.
    pub key: String,
    /// Absolute offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// A result with the location already attached.
type Checked<T> = Result<T, PteError>;

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
    let program = et::ProgramRef::read_as_root(buf).at(&c, "program")?;
    let inline = program
        .backend_delegate_data()
        .at(&c, "program delegate data")?;
    let segments = program.segments().at(&c, "program segments")?;
    let n_inline = inline.map_or(0, |v| v.len());
    let n_segments = segments.map_or(0, |v| v.len());
    // Segments referenced by anything; an unreferenced one means a reference was lost (e.g.
    // the named data table XNNPACK reads its weights from, which it dereferences unchecked).
    let mut used = check_segment_refs(&c, program, n_segments)?;
    let named = named_entries(&c, program, segments)?;
    let payloads = Payloads {
        inline,
        segments,
        buf,
        file_bytes,
        named_data: named
            .iter()
            .map(|entry| (entry.key.clone(), entry.size))
            .collect(),
    };
    let plans = program.execution_plan().at(&c, "program execution plans")?;
    let mut uses = ProgramUses {
        embedded: embedded_blobs(&c, &named, buf, file_bytes.file_len())?,
        named_keys: named.iter().map(|entry| entry.key.clone()).collect(),
        ..ProgramUses::default()
    };
    let mut xnnpack = Vec::new();
    for (p, plan) in items(plans).enumerate() {
        let plan = plan.at(&c, &format!("execution plan {p}"))?;
        let name = text(plan.name()).at(&c, &format!("execution plan {p} name"))?;
        c.place.method = Some(name.unwrap_or_else(|| format!("<plan {p}>")));
        c.place.instruction = None;
        let refs = Refs {
            buf,
            plan: p,
            n_inline,
            n_segments,
        };
        for payload in check_plan(&mut c, plan, &refs, &mut used, &mut uses)? {
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
fn check_segment_refs(
    c: &Checker,
    program: et::ProgramRef<'_>,
    n_segments: usize,
) -> Checked<Vec<usize>> {
    let segment = |idx: planus::Result<u32>, what: &str| -> Checked<usize> {
        let idx = idx.at(c, what)?;
        match usize::try_from(idx) {
            Ok(i) if i < n_segments => Ok(i),
            _ => Err(c.err(
                what.to_string(),
                format!(
                    "segment index {idx} is out of range (the program has {n_segments} segments)"
                ),
            )),
        }
    };
    let mut used = Vec::new();
    let named = program.named_data().at(c, "named data")?;
    for (i, entry) in items(named).enumerate() {
        let what = format!("named data entry {i}");
        let entry = entry.at(c, &what)?;
        if text(entry.key()).at(c, &what)?.is_none() {
            return Err(c.err(what, "has no key".into()));
        }
        used.push(segment(entry.segment_index(), &what)?);
    }
    let mutable = program
        .mutable_data_segments()
        .at(c, "mutable data segments")?;
    for (i, entry) in items(mutable).enumerate() {
        let what = format!("mutable data segment entry {i}");
        let entry = entry.at(c, &what)?;
        used.push(segment(entry.segment_index(), &what)?);
    }
    if let Some(constants) = program.constant_segment().at(c, "constant segment")? {
        // An empty offset list means there are no constants, and no segment is needed.
        if constants
            .offsets()
            .at(c, "constant segment")?
            .is_some_and(|o| !o.is_empty())
        {
            used.push(segment(constants.segment_index(), "constant segment")?);
        }
    }
    Ok(used)
}

/// Where the current plan is and what its references must point into.
struct Refs<'b> {
    buf: &'b [u8],
    plan: usize,
    n_inline: usize,
    n_segments: usize,
}

fn check_plan(
    c: &mut Checker,
    plan: et::ExecutionPlanRef<'_>,
    refs: &Refs<'_>,
    used_segments: &mut Vec<usize>,
    uses: &mut ProgramUses,
) -> Checked<Vec<XnnpackPayload>> {
    check_planned_memory(c, plan, total_memory())?;
    let values = plan
        .values()
        .at(c, "value table")?
        .ok_or_else(|| c.err("value table".into(), "is missing".into()))?;
    // First pass: every value's type tag, so references can be checked against it.
    let mut tags = Vec::with_capacity(values.len());
    let mut members = Vec::with_capacity(values.len());
    for (v, value) in values.iter().enumerate() {
        let loc = || format!("value {v}");
        let (t, member) = match value.and_then(|value| value.val()) {
            Ok(Some(member)) => (tag_of(&member), Some(member)),
            Err(e) if matches!(e.error_kind, ErrorKind::UnknownUnionTag { .. }) => {
                let tag = tag_without_table(refs.buf, refs.plan, v);
                return Err(c.err(loc(), format!("has unknown type tag {tag}")));
            }
            // No member was read: a `Null` without its table is fine (see `tag_without_table`).
            read => match (tag_without_table(refs.buf, refs.plan, v), read) {
                (tag::NULL, _) => (tag::NULL, None),
                (_, Err(e)) => return Err(c.read(&loc(), e)),
                (0, Ok(_)) => return Err(c.err(loc(), "has unknown type tag 0".into())),
                (t, Ok(_)) => return Err(c.err(loc(), format!("is {} without data", tag_name(t)))),
            },
        };
        tags.push(t);
        members.push(member);
    }
    // Tensors a FreeCall may free: neither constant nor memory-planned (freeing those would
    // leave a null data pointer that later kernels dereference).
    let mut freeable = vec![false; tags.len()];
    // Tensors with elements but no storage at all (not constant, not memory-planned, no
    // external data): their data pointer is null unless the caller binds them as method
    // inputs, and a kernel handed one writes through it.
    let mut storageless = vec![false; tags.len()];
    for (v, member) in members.iter().enumerate() {
        let Some(member) = member else { continue };
        check_value(c, v, member, &tags)?;
        if let et::KernelTypesRef::Tensor(tensor) = member {
            let constant = tensor
                .data_buffer_idx()
                .at(c, &format!("value {v} (Tensor)"))?
                != 0;
            let planned = tensor
                .allocation_info()
                .at(c, &format!("value {v} (Tensor)"))?
                .is_some();
            let external = tensor
                .extra_tensor_info()
                .at(c, &format!("value {v} (Tensor)"))?
                .is_some();
            freeable[v] = !constant && !planned;
            storageless[v] = !constant
                && !planned
                && !external
                && has_elements(*tensor).at(c, &format!("value {v} (Tensor)"))?;
        }
    }
    let inputs = plan.inputs().at(c, "method inputs")?;
    for idx in items(inputs) {
        if let Some(s) = usize::try_from(idx)
            .ok()
            .and_then(|v| storageless.get_mut(v))
        {
            *s = false;
        }
    }
    let index_list = |c: &Checker, list: planus::Result<Option<Vector<'_, i32>>>, what: &str| {
        for (i, idx) in items(list.at(c, what)?).enumerate() {
            value_index(c, &tags, idx, &format!("{what} entry {i}"))?;
        }
        Checked::Ok(())
    };
    index_list(c, plan.inputs(), "method inputs")?;
    index_list(c, plan.outputs(), "method outputs")?;
    let dynamism_of = |list: planus::Result<Option<Vector<'_, i32>>>| -> Vec<i32> {
        // The indices were checked just above.
        items(list.ok().flatten())
            .map(|idx| {
                let member = usize::try_from(idx).ok().and_then(|v| members.get(v));
                match member {
                    Some(Some(et::KernelTypesRef::Tensor(t))) => {
                        t.shape_dynamism().map_or(-1, |d| d as i32)
                    }
                    _ => -1,
                }
            })
            .collect()
    };
    uses.io_dynamism.push((
        c.place.method.clone().unwrap_or_default(),
        IoDynamism {
            inputs: dynamism_of(plan.inputs()),
            outputs: dynamism_of(plan.outputs()),
        },
    ));

    let mut op_names = Vec::new();
    let operators = plan.operators().at(c, "operator table")?;
    for (o, op) in items(operators).enumerate() {
        let loc = || format!("operator {o}");
        let op = op.at(c, &loc())?;
        let name = text(op.name())
            .at(c, &loc())?
            .ok_or_else(|| c.err(loc(), "has no name".into()))?;
        op_names.push(match text(op.overload()).at(c, &loc())? {
            Some(overload) if !overload.is_empty() => format!("{name}.{overload}"),
            _ => name,
        });
    }
    let method = c.place.method.clone().unwrap_or_default();
    for op in &op_names {
        uses.operators.push((method.clone(), op.clone()));
    }
    let delegates = plan.delegates().at(c, "delegate table")?;
    let xnnpack = check_delegates(c, delegates, refs, used_segments, &method, uses)?;
    let n_delegates = delegates.map_or(0, |d| d.len());
    // Fewest arguments each delegate is called with (its payload's external ids index them).
    let mut call_args: Vec<Option<usize>> = vec![None; n_delegates];

    let method_values = MethodValues {
        tags: &tags,
        freeable: &freeable,
        storageless: &storageless,
        members: &members,
        op_names: &op_names,
        n_delegates,
    };
    let chains = plan.chains().at(c, "chains")?;
    for (ch, chain) in items(chains).enumerate() {
        let chain = chain.at(c, &format!("chain {ch}"))?;
        index_list(c, chain.inputs(), &format!("chain {ch} inputs"))?;
        index_list(c, chain.outputs(), &format!("chain {ch} outputs"))?;
        let instructions = chain
            .instructions()
            .at(c, &format!("chain {ch} instructions"))?;
        let n_instructions = instructions.map_or(0, |i| i.len());
        for (i, instruction) in items(instructions).enumerate() {
            c.place.instruction = Some(i);
            let loc = format!("chain {ch} instruction {i}");
            let args = instruction
                .and_then(|instruction| instruction.instr_args())
                .map_err(|e| match e.error_kind {
                    ErrorKind::UnknownUnionTag { tag } => {
                        c.err(loc.clone(), format!("has unknown instruction type {tag}"))
                    }
                    _ => c.read(&loc, e),
                })?
                .ok_or_else(|| c.err(loc.clone(), "has no arguments".into()))?;
            check_instruction(c, &method_values, &args, n_instructions, &loc)?;
            if let et::InstructionArgumentsRef::DelegateCall(call) = args {
                // Both fields were read by `check_instruction`.
                let n = call.args().ok().flatten().map_or(0, |a| a.len());
                let slot = call
                    .delegate_index()
                    .ok()
                    .and_then(|d| usize::try_from(d).ok())
                    .and_then(|d| call_args.get_mut(d));
                if let Some(slot) = slot {
                    *slot = Some(slot.map_or(n, |m| m.min(n)));
                }
            }
        }
        c.place.instruction = None;
    }
    check_prim_calls(c, plan, &tags, &members, &op_names)?;
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
    plan: et::ExecutionPlanRef<'_>,
    tags: &[u8],
    members: &[Option<et::KernelTypesRef<'_>>],
    op_names: &[String],
) -> Checked<()> {
    // Every read below was already made (and checked) by the first pass, so a failure here
    // cannot happen; it is skipped rather than reported twice.
    let mut written = vec![false; tags.len()];
    let mut mark = |v: i32| {
        if let Some(w) = usize::try_from(v).ok().and_then(|v| written.get_mut(v)) {
            *w = true;
        }
    };
    items(plan.inputs().ok().flatten()).for_each(&mut mark);
    let mut calls = Vec::new();
    for (ch, chain) in items(plan.chains().ok().flatten()).enumerate() {
        let instructions = chain
            .ok()
            .and_then(|chain| chain.instructions().ok().flatten());
        for (i, instruction) in items(instructions).enumerate() {
            use et::InstructionArgumentsRef as Args;
            match instruction.ok().and_then(|i| i.instr_args().ok().flatten()) {
                Some(Args::KernelCall(call)) => {
                    let list: Vec<i32> = items(call.args().ok().flatten()).collect();
                    if let Some(&out) = list.last() {
                        mark(out);
                    }
                    calls.push((ch, i, call.op_index().unwrap_or(-1), list));
                }
                Some(Args::DelegateCall(call)) => {
                    items(call.args().ok().flatten()).for_each(&mut mark);
                }
                Some(Args::MoveCall(call)) => {
                    if let Ok(to) = call.move_to() {
                        mark(to);
                    }
                }
                _ => {}
            }
        }
    }
    use et::KernelTypesRef as K;
    let facts: Vec<prim_ops::Fact> = members
        .iter()
        .zip(&written)
        .map(|(member, &w)| match member {
            Some(K::Int(int)) => prim_ops::Fact::Int {
                fixed: if w { None } else { int.int_val().ok() },
            },
            Some(K::Double(_)) => prim_ops::Fact::Double,
            Some(K::Bool(_)) => prim_ops::Fact::Bool,
            Some(K::Tensor(t)) => prim_ops::Fact::Tensor {
                rank: t.sizes().ok().flatten().map_or(0, |v| v.len()),
                dtype: t.scalar_type().map_or(-1, |d| d as i8),
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

/// Each named data entry with its segment's offset (from the segment base) and size, in one
/// walk: XNNPACK loads entries by key, and DiffuLex reads its embedded files from them. Segment
/// indices were range-checked by `check_segment_refs`.
fn named_entries(
    c: &Checker,
    program: et::ProgramRef<'_>,
    segments: Option<Tables<'_, et::DataSegmentRef<'_>>>,
) -> Checked<Vec<NamedBlob>> {
    let mut entries = Vec::new();
    let named = program.named_data().at(c, "named data")?;
    for (i, entry) in items(named).enumerate() {
        let what = format!("named data entry {i}");
        let entry = entry.at(c, &what)?;
        let key = text(entry.key()).at(c, &what)?.unwrap_or_default();
        let index = entry.segment_index().at(c, &what)? as usize;
        if let Some(segment) = segments.and_then(|s| s.get(index)) {
            let segment = segment.at(c, &what)?;
            let (offset, size) = (segment.offset().at(c, &what)?, segment.size().at(c, &what)?);
            entries.push(NamedBlob { key, offset, size });
        }
    }
    Ok(entries)
}

/// The [`EMBEDDED_PREFIX`] entries of `named` with absolute file offsets; an entry whose bytes
/// run past the end of the file is an error.
fn embedded_blobs(
    c: &Checker,
    named: &[NamedBlob],
    buf: &[u8],
    file_len: u64,
) -> Checked<Vec<NamedBlob>> {
    let base = super::segments::segment_base(buf).unwrap_or(0);
    let mut blobs = Vec::new();
    for (i, entry) in named.iter().enumerate() {
        if !entry.key.starts_with(EMBEDDED_PREFIX) {
            continue;
        }
        let (offset, size) = (entry.offset, entry.size);
        match base.checked_add(offset).and_then(|s| s.checked_add(size)) {
            Some(end) if end <= file_len => blobs.push(NamedBlob {
                key: entry.key.clone(),
                offset: base + offset,
                size,
            }),
            _ => {
                return Err(c.err(
                    format!("named data entry {i}"),
                    format!(
                        "{:?}: {size} bytes at segment offset {offset} run past the end of the \
                         {file_len}-byte file",
                        entry.key
                    ),
                ))
            }
        }
    }
    Ok(blobs)
}

/// A vector of tables, as the generated readers return it.
type Tables<'a, T> = Vector<'a, planus::Result<T>>;

/// An XNNPACK delegate of the current plan and where its payload is.
struct XnnpackPayload {
    delegate: usize,
    location: et::DataLocation,
    index: usize,
    /// Fewest arguments a call of the delegate passes (`None`: never called).
    call_args: Option<usize>,
}

/// What is needed to fetch and check delegate payloads.
struct Payloads<'p> {
    inline: Option<Tables<'p, et::BackendDelegateInlineDataRef<'p>>>,
    segments: Option<Tables<'p, et::DataSegmentRef<'p>>>,
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
        let result = if payload.location == et::DataLocation::Inline {
            // The index was range-checked by `check_delegates`.
            let bytes = self
                .inline
                .and_then(|v| v.get(payload.index))
                .transpose()
                .and_then(|inline| inline.map(|i| i.data()).transpose())
                .at(c, &loc)?
                .flatten()
                .ok_or_else(|| c.err(loc.clone(), "inline payload has no data".into()))?;
            xnnpack_blob::check(bytes, bytes.len() as u64, &ctx)
        } else {
            let (prefix, len) = self.read_segment(c, &loc, payload.index)?;
            xnnpack_blob::check(&prefix, len, &ctx)
        };
        result.map_err(|d| c.err(format!("{loc} payload {}", d.location), d.problem))
    }

    /// The checked prefix of segment `index` and the segment's full length.
    fn read_segment(&self, c: &Checker, loc: &str, index: usize) -> Checked<(Vec<u8>, u64)> {
        let segment = self
            .segments
            .and_then(|s| s.get(index))
            .ok_or_else(|| c.err(loc.to_string(), format!("has no segment {index}")))?
            .at(c, loc)?;
        let (offset, len) = (segment.offset().at(c, loc)?, segment.size().at(c, loc)?);
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

fn check_value(c: &Checker, v: usize, member: &et::KernelTypesRef<'_>, tags: &[u8]) -> Checked<()> {
    let t = tag_of(member);
    let loc = format!(
        "value {v} ({})",
        tag_name(t)
            .trim_start_matches("an ")
            .trim_start_matches("a ")
    );
    let no_items = || c.err(loc.clone(), "has no items".into());
    let items_refer_to = |list: planus::Result<Option<Vector<'_, i32>>>,
                          allowed: &[u8],
                          allow_minus_one: bool|
     -> Checked<()> {
        for (i, idx) in list.at(c, &loc)?.ok_or_else(no_items)?.iter().enumerate() {
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
    let has_data = |present: planus::Result<bool>| -> Checked<()> {
        match present.at(c, &loc)? {
            true => Ok(()),
            false => Err(c.err(loc.clone(), "has no data".into())),
        }
    };
    use et::KernelTypesRef as K;
    match member {
        K::Tensor(tensor) => check_tensor(c, &loc, *tensor),
        // IntList items are value indices (boxed ints), read with toInt() at execution.
        K::IntList(list) => {
            let list = list.items().at(c, &loc)?.ok_or_else(no_items)?;
            for (i, idx) in list.iter().enumerate() {
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
        K::TensorList(list) => items_refer_to(list.items(), &[tag::TENSOR], false),
        K::OptionalTensorList(list) => {
            items_refer_to(list.items(), &[tag::TENSOR, tag::NULL], true)
        }
        K::String(s) => has_data(s.string_val().map(|s| s.is_some())),
        K::DoubleList(list) => has_data(list.items().map(|l| l.is_some())),
        K::BoolList(list) => has_data(list.items().map(|l| l.is_some())),
        _ => Ok(()),
    }
}

fn check_tensor(c: &Checker, loc: &str, t: et::TensorRef<'_>) -> Checked<()> {
    let bad = |problem: String| c.err(loc.to_string(), problem);
    // An enum value outside the schema is the reader's `UnknownEnumTag`.
    let unknown = |what: &str, e: planus::Error| match e.error_kind {
        ErrorKind::UnknownEnumTag { source } => bad(format!("has unknown {what} {}", source.tag)),
        _ => c.read(loc, e),
    };
    t.scalar_type().map_err(|e| unknown("scalar type", e))?;
    t.shape_dynamism()
        .map_err(|e| unknown("shape dynamism", e))?;
    let sizes = t
        .sizes()
        .at(c, loc)?
        .ok_or_else(|| bad("has no sizes".into()))?;
    let dim_order = t
        .dim_order()
        .at(c, loc)?
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
    for (d, (size, &dim)) in sizes.iter().zip(dim_order).enumerate() {
        if size < 0 {
            return Err(bad(format!("has negative size {size} in dimension {d}")));
        }
        let dim = usize::from(dim);
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

/// Checks the delegate table, records the backends it uses, and returns the XNNPACK
/// delegates' payloads.
fn check_delegates(
    c: &Checker,
    delegates: Option<Tables<'_, et::BackendDelegateRef<'_>>>,
    refs: &Refs<'_>,
    used_segments: &mut Vec<usize>,
    method: &str,
    uses: &mut ProgramUses,
) -> Checked<Vec<XnnpackPayload>> {
    let mut xnnpack = Vec::new();
    for (d, delegate) in items(delegates).enumerate() {
        let loc = format!("delegate {d}");
        let bad = |problem: &str| c.err(loc.clone(), problem.to_string());
        let delegate = delegate.at(c, &loc)?;
        let backend = text(delegate.id())
            .at(c, &loc)?
            .ok_or_else(|| bad("has no backend id"))?;
        uses.backends.push((method.to_string(), backend.clone()));
        let processed = delegate
            .processed()
            .at(c, &loc)?
            .ok_or_else(|| bad("has no processed data reference"))?;
        let location = processed.location().map_err(|e| match e.error_kind {
            ErrorKind::UnknownEnumTag { source } => {
                bad(&format!("has unknown data location {}", source.tag))
            }
            _ => c.read(&loc, e),
        })?;
        let index = usize::try_from(processed.index().at(c, &loc)?).unwrap_or(usize::MAX);
        let (what, len) = match location {
            et::DataLocation::Inline => ("inline delegate blobs", refs.n_inline),
            et::DataLocation::Segment => ("segments", refs.n_segments),
        };
        if index >= len {
            return Err(bad(&format!(
                "processed data index {index} is out of range (the program has {len} {what})"
            )));
        }
        if location == et::DataLocation::Segment {
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
            .compile_specs()
            .at(c, &loc)?
            .ok_or_else(|| bad("has no compile specs list"))?;
        for (s, spec) in specs.iter().enumerate() {
            let spec = spec.at(c, &loc)?;
            if text(spec.key()).at(c, &loc)?.is_none() || spec.value().at(c, &loc)?.is_none() {
                return Err(bad(&format!("compile spec {s} lacks its key or value")));
            }
        }
    }
    Ok(xnnpack)
}

/// What instructions are checked against.
struct MethodValues<'t> {
    tags: &'t [u8],
    freeable: &'t [bool],
    storageless: &'t [bool],
    members: &'t [Option<et::KernelTypesRef<'t>>],
    op_names: &'t [String],
    n_delegates: usize,
}

fn check_instruction(
    c: &Checker,
    method: &MethodValues<'_>,
    args: &et::InstructionArgumentsRef<'_>,
    n_instructions: usize,
    loc: &str,
) -> Checked<()> {
    let tags = method.tags;
    let bad = |problem: String| c.err(loc.to_string(), problem);
    let value = |idx: planus::Result<i32>, what: &str| {
        value_index(c, tags, idx.at(c, loc)?, &format!("{loc} {what}"))
    };
    let arg_list = |list: planus::Result<Option<Vector<'_, i32>>>, what: &str| {
        items(list.at(c, loc)?)
            .enumerate()
            .map(|(a, idx)| value_index(c, tags, idx, &format!("{loc} ({what}) argument {a}")))
            .collect::<Checked<Vec<usize>>>()
    };
    use et::InstructionArgumentsRef as Args;
    match args {
        Args::KernelCall(call) => {
            let op = call.op_index().at(c, loc)?;
            let name = usize::try_from(op)
                .ok()
                .and_then(|o| method.op_names.get(o))
                .ok_or_else(|| {
                    bad(format!(
                        "operator index {op} is out of range (the method has {} operators)",
                        method.op_names.len()
                    ))
                })?;
            let arg_values = arg_list(call.args(), name)?;
            check_kernel_args(c, loc, name, &arg_values, tags)?;
            check_quantized_dtypes(c, loc, name, &arg_values, method)?;
            check_arg_storage(c, loc, name, &arg_values, method)?;
            check_quant_range(c, loc, name, &arg_values, method)
        }
        Args::DelegateCall(call) => {
            let d = call.delegate_index().at(c, loc)?;
            let n_delegates = method.n_delegates;
            if usize::try_from(d).map_or(true, |d| d >= n_delegates) {
                return Err(bad(format!(
                    "delegate index {d} is out of range (the method has {n_delegates} delegates)"
                )));
            }
            arg_list(call.args(), "delegate call").map(drop)
        }
        Args::MoveCall(call) => {
            // A move overwrites the destination's EValue, type included: a later kernel that
            // was checked against the destination's declared type would then hit a fatal
            // toBool()/toTensor() assert. Moves only ever copy between values of one type.
            let from = value(call.move_from(), "move source")?;
            let to = value(call.move_to(), "move destination")?;
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
        Args::JumpFalseCall(call) => {
            // The runtime reads the condition with toBool() unless it is a Tensor: anything
            // else is a fatal assert.
            let cond = value(call.cond_value_index(), "jump condition")?;
            if !matches!(tags.get(cond), Some(&tag::BOOL) | Some(&tag::TENSOR)) {
                return Err(bad(format!(
                    "jump condition is value {cond}, {}, not a Bool or a Tensor",
                    tag_name(tags.get(cond).copied().unwrap_or(0))
                )));
            }
            let dest = call.destination_instruction().at(c, loc)?;
            if usize::try_from(dest).map_or(true, |d| d >= n_instructions) {
                return Err(bad(format!(
                    "jump destination {dest} is out of range (the chain has {n_instructions} instructions)"
                )));
            }
            Ok(())
        }
        Args::FreeCall(call) => {
            let v = value(call.value_index(), "freed value")?;
            match tags.get(v) {
                Some(&tag::TENSOR) if method.freeable.get(v) == Some(&true) => Ok(()),
                Some(&tag::TENSOR) => Err(bad(format!(
                    "frees value {v}, a constant or memory-planned Tensor"
                ))),
                other => Err(bad(format!(
                    "frees value {v}, {}, not a Tensor",
                    tag_name(other.copied().unwrap_or(0))
                ))),
            }
        }
    }
}

/// The machine's physical memory in bytes (`MemTotal` of /proc/meminfo), where known.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
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

/// The planned working memory of a method (`non_const_buffer_sizes`) is allocated and zeroed
/// when the method loads. A size read from a damaged file can be petabytes (the allocation
/// then fails or aborts) or merely more than the machine has (the kernel grants it lazily
/// and the process is killed while zeroing it), so sizes must be non-negative and their sum
/// at most the physical memory.
fn check_planned_memory(
    c: &Checker,
    plan: et::ExecutionPlanRef<'_>,
    limit: Option<u64>,
) -> Checked<()> {
    let sizes = plan
        .non_const_buffer_sizes()
        .at(c, "planned buffer sizes")?;
    let mut total: u64 = 0;
    for (i, size) in items(sizes).enumerate() {
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

/// The value at index `v` if it is an Int.
fn int_of(method: &MethodValues<'_>, v: usize) -> Option<i64> {
    match method.members.get(v) {
        Some(Some(et::KernelTypesRef::Int(int))) => int.int_val().ok(),
        _ => None,
    }
}

/// The value at index `v` if it is a Tensor.
fn tensor_of<'a>(method: &MethodValues<'a>, v: usize) -> Option<et::TensorRef<'a>> {
    match method.members.get(v) {
        Some(Some(et::KernelTypesRef::Tensor(t))) => Some(*t),
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
    method: &MethodValues<'_>,
) -> Checked<()> {
    let Some((lo_at, hi_at, dtype_at)) = quant_range_args(op) else {
        return Ok(());
    };
    check_out_fits_input(c, loc, op, args, method)?;
    let int_arg = |a: usize| args.get(a).and_then(|&v| int_of(method, v));
    let (Some(lo), Some(hi), Some(dtype)) = (int_arg(lo_at), int_arg(hi_at), int_arg(dtype_at))
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
    method: &MethodValues<'_>,
) -> Checked<()> {
    let (Some(&input), Some(&out)) = (args.first(), args.last()) else {
        return Ok(());
    };
    let (Some(input_t), Some(out_t)) = (tensor_of(method, input), tensor_of(method, out)) else {
        return Ok(());
    };
    let sizes = |t: et::TensorRef<'_>| -> Checked<Vec<i64>> {
        Ok(items(t.sizes().at(c, loc)?).map(i64::from).collect())
    };
    let (in_sizes, out_sizes) = (sizes(input_t)?, sizes(out_t)?);
    let numel = |s: &[i64]| s.iter().try_fold(1i64, |a, &d| a.checked_mul(d.max(0)));
    let fits = if out_t.shape_dynamism().at(c, loc)? == et::TensorShapeDynamism::Static {
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

/// ExecuTorch's kernels abort (`promoteTypes not valid for quantized dtypes`, a fatal assert)
/// when handed a tensor of a quantized `ScalarType` (QInt8, QUInt8, QInt32, QUInt4x2,
/// QUInt2x4). Exporters never declare one: quantized models use the quantize/dequantize
/// kernels on plain integer tensors. Found by fuzzing
/// (`fuzz/crashes/pte_load/crash-a1433db9c6bc35a9260d31c5b2a7c51d994ff64e`).
fn check_quantized_dtypes(
    c: &Checker,
    loc: &str,
    op: &str,
    args: &[usize],
    method: &MethodValues<'_>,
) -> Checked<()> {
    use et::ScalarType as S;
    for (a, &v) in args.iter().enumerate() {
        let Some(tensor) = tensor_of(method, v) else {
            continue;
        };
        let dtype = tensor.scalar_type().at(c, loc)?;
        if matches!(
            dtype,
            S::Qint8 | S::Quint8 | S::Qint32 | S::Quint4x2 | S::Quint2x4
        ) {
            return Err(c.err(
                loc.to_string(),
                format!(
                    "{op} argument {a} is value {v}, a Tensor of the quantized scalar type {}, \
                     which no kernel takes",
                    dtype as i8
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a tensor's sizes multiply to more than zero elements.
fn has_elements(tensor: et::TensorRef<'_>) -> planus::Result<bool> {
    Ok(tensor.sizes()?.is_some_and(|s| s.iter().all(|d| d != 0)))
}

/// Rejects a kernel call that is handed a tensor without storage, directly or inside a
/// tensor list: the kernel would read or write through a null data pointer.
fn check_arg_storage(
    c: &Checker,
    loc: &str,
    op: &str,
    args: &[usize],
    method: &MethodValues<'_>,
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
    let storageless = |v: usize| method.storageless.get(v) == Some(&true);
    for (a, &v) in args.iter().enumerate() {
        if storageless(v) {
            return Err(bad(a, v, ""));
        }
        let list = match method.members.get(v) {
            Some(Some(et::KernelTypesRef::TensorList(l))) => l.items(),
            Some(Some(et::KernelTypesRef::OptionalTensorList(l))) => l.items(),
            _ => Ok(None),
        };
        let list = list.at(c, &format!("value {v}"))?;
        for (i, item) in items(list).enumerate() {
            if usize::try_from(item).is_ok_and(storageless) {
                return Err(bad(a, item as usize, &format!(" (list item {i})")));
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
