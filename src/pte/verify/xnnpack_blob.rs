//! Checks of an XNNPACK delegate payload (the processed blob of a delegate whose backend id
//! is `XnnpackBackend`) before the XNNPACK backend parses it.
//!
//! Why the verifier exists is told in `verify/mod.rs`. What XNNPACK trusts here: a tensor's
//! dims decide how many bytes weight packing reads from the constant behind it, a per-channel
//! scale array is read for as many channels as the dims say, an external id indexes the
//! delegate call's argument array directly, a union tag with no table behind it is
//! dereferenced, and a depthwise convolution divides by its group input channels. This pass
//! rejects such a payload first:
//!
//! - the header's flatbuffer and constant ranges lie inside the payload, in order, and the
//!   flatbuffer has XNNPACK's identifier (`XN00`/`XN01`);
//! - every value is a known union member with its table; its datatype is in the schema's
//!   range, its dims vector (whose length the runtime uses as the rank; `num_dims` is not
//!   read) has at most XNNPACK's 6 entries whose byte count does not overflow, its flags are
//!   the two external flags at most, its id is unique, and an external id is unique, below
//!   `num_externs` and below the delegate call's argument count;
//! - a constant's bytes (inline range, named data entry, or deprecated in-flatbuffer buffer)
//!   exist and hold at least the bytes its dims and datatype describe; quantization parameters
//!   are present, their channel dimension is inside the tensor, their scales cover every
//!   channel, and a block size is positive;
//! - every node is a known union member with its table, and each value id it names is defined
//!   (only biases may be absent); it reads only weights, inputs and values an earlier node
//!   wrote, and writes only activations or outputs, each once (XNNPACK runs nodes in order;
//!   a node writing a bias segfaulted); transpose permutations, pad and slice vectors have
//!   the lengths XNNPACK reads, and a depthwise convolution's divisor is not zero;
//! - an activation (neither constant nor external) holds at most the square of the largest
//!   constant or external value's element count, or 2^20 if that is more: XNNPACK reserves
//!   memory by the declared dims (one flipped bit asked for 16 GiB and the process was
//!   killed), while every node it runs produces at most the product of its inputs' sizes
//!   (the floor covers concatenations and pads of tiny tensors).
//!
//! # Pinned to ExecuTorch 1.5.1
//!
//! The payload layout read here is ExecuTorch 1.5.1's: the 30-byte `XNNHeader`
//! (`backends/xnnpack/runtime/XNNHeader.h`), the `XN00`/`XN01` identifiers, and the tables of
//! `backends/xnnpack/serialization/runtime_schema.fbs` (`XValueUnion`, `XNodeUnion` with
//! 47 members, `XNNDatatype` with the element sizes in `datatype_bits`), read through the
//! readers generated from the copy of that schema in `schema/`. On an ExecuTorch upgrade,
//! regenerate them (`tools/gen_flatbuffers.sh --from-venv`): a new node type or datatype then
//! fails to compile in `Graph::node` or `datatype_bits` until it is classified. Diff the
//! header against the one this was written for, check that `XNNCompiler.cpp` still reads the
//! fields listed above unchecked (and nothing new), and rerun `cargo test --test
//! xnnpack_payload`, whose bit flips cover every byte of a payload.
//!
//! What it cannot see: values that are valid but wrong (a changed weight byte, a clamp bound)
//! run and give different numbers, and shape mismatches XNNPACK detects itself come back as
//! its own typed errors.

use std::collections::{HashMap, HashSet};

use planus::errors::ErrorKind;
use planus::{ReadAsRoot, Vector};

use super::schema::xnn;

/// The backend id of XNNPACK delegates in a program's delegate table.
pub(crate) const BACKEND_ID: &str = "XnnpackBackend";

/// Length of the payload header (`XNNHeader`): 4 zero bytes, magic `XH00`, `u16` header
/// length, `u32` flatbuffer offset and size, `u32` constant data offset, `u64` constant size.
pub(crate) const HEADER_LEN: usize = 30;

/// `XNN_INVALID_VALUE_ID`: "no value" (e.g. a linear layer without bias).
const INVALID_ID: u32 = u32::MAX;
/// `XNN_MAX_TENSOR_DIMS`.
const MAX_DIMS: usize = 6;
/// The runtime refuses more external values than this.
const MAX_EXTERNS: u32 = 4096;
/// `XNN_VALUE_FLAG_EXTERNAL_INPUT | XNN_VALUE_FLAG_EXTERNAL_OUTPUT`.
const EXTERNAL_FLAGS: u32 = 0b11;

/// What a payload is checked against, taken from the program around it.
pub(crate) struct Context<'a> {
    /// Byte size of each named data entry of the program, by key (XNNPACK loads weights by
    /// key from this map).
    pub named_data: &'a HashMap<String, u64>,
    /// Fewest arguments any call of this delegate passes, if it is called: the backend
    /// indexes the argument array with each external id, unchecked.
    pub call_args: Option<usize>,
}

/// A defect in a payload: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defect {
    /// Where in the payload ("header", "value 3", "node 7 (FullyConnected)").
    pub location: String,
    /// What is wrong, with the numbers involved.
    pub problem: String,
}

type Checked<T> = Result<T, Defect>;

fn defect(location: impl Into<String>, problem: impl Into<String>) -> Defect {
    Defect {
        location: location.into(),
        problem: problem.into(),
    }
}

/// The payload's header, when it has one (payloads without one are a bare flatbuffer).
#[derive(Debug, Clone, Copy)]
struct Header {
    flatbuffer_offset: u64,
    flatbuffer_size: u64,
    constant_offset: u64,
    constant_size: u64,
}

fn le_u32(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u64::from(u32::from_le_bytes(v))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Parses the header from the payload's first [`HEADER_LEN`] bytes; `None` if the magic is
/// absent (the runtime then reads the whole payload as the flatbuffer).
fn header(head: &[u8]) -> Option<Header> {
    if head.len() < HEADER_LEN || head.get(4..8) != Some(b"XH00") {
        return None;
    }
    Some(Header {
        flatbuffer_offset: le_u32(head, 10),
        flatbuffer_size: le_u32(head, 14),
        constant_offset: le_u32(head, 18),
        constant_size: le_u64(head, 22),
    })
}

/// How many leading bytes of a payload of `len` bytes [`check`] needs, given its first
/// [`HEADER_LEN`] bytes: the header and the flatbuffer, not the constant data after them.
///
/// Lets a caller read only that much of a large segment from disk.
pub(crate) fn needed_prefix(head: &[u8], len: u64) -> u64 {
    match header(head) {
        Some(h) => h
            .flatbuffer_offset
            .saturating_add(h.flatbuffer_size)
            .min(len),
        None => len,
    }
}

/// Checks a payload of `len` bytes, of which `prefix` holds at least the first
/// [`needed_prefix`] bytes.
pub(crate) fn check(prefix: &[u8], len: u64, ctx: &Context<'_>) -> Checked<()> {
    if len < HEADER_LEN as u64 || prefix.len() < HEADER_LEN {
        return Err(defect(
            "payload",
            format!("is {len} bytes, shorter than the {HEADER_LEN}-byte XNNPACK header"),
        ));
    }
    let (flatbuffer, constants) = match header(prefix) {
        Some(h) => {
            let fb_end = h.flatbuffer_offset.checked_add(h.flatbuffer_size);
            let const_end = h.constant_offset.checked_add(h.constant_size);
            if h.flatbuffer_size < 8 || fb_end.is_none_or(|e| e > len) {
                return Err(defect(
                    "header",
                    format!(
                        "flatbuffer range {}+{} does not fit the {len}-byte payload",
                        h.flatbuffer_offset, h.flatbuffer_size
                    ),
                ));
            }
            if const_end.is_none_or(|e| e > len) {
                return Err(defect(
                    "header",
                    format!(
                        "constant data range {}+{} does not fit the {len}-byte payload",
                        h.constant_offset, h.constant_size
                    ),
                ));
            }
            if fb_end.is_some_and(|e| h.constant_offset < e) {
                return Err(defect(
                    "header",
                    format!(
                        "constant data at {} overlaps the flatbuffer at {}+{}",
                        h.constant_offset, h.flatbuffer_offset, h.flatbuffer_size
                    ),
                ));
            }
            let range = usize::try_from(h.flatbuffer_offset)
                .ok()
                .zip(fb_end.and_then(|e| usize::try_from(e).ok()));
            let fb = range
                .and_then(|(s, e)| prefix.get(s..e))
                .ok_or_else(|| defect("header", "flatbuffer bytes were not provided"))?;
            (fb, Some(h.constant_size))
        }
        None => {
            let whole = usize::try_from(len)
                .ok()
                .and_then(|l| prefix.get(..l))
                .ok_or_else(|| defect("payload", "flatbuffer bytes were not provided"))?;
            (whole, None)
        }
    };
    match flatbuffer.get(4..8) {
        Some(b"XN00") | Some(b"XN01") => {}
        other => {
            return Err(defect(
                "flatbuffer",
                format!(
                    "has identifier {:?}, not XN00 or XN01",
                    String::from_utf8_lossy(other.unwrap_or_default())
                ),
            ))
        }
    }
    let graph = xnn::XnnGraphRef::read_as_root(flatbuffer).at("graph")?;
    Graph::read(graph, constants, ctx)?.check_nodes()
}

/// The value ids a node reads and writes, each with the field it is in.
#[derive(Default)]
struct Io {
    inputs: Vec<(&'static str, u32)>,
    outputs: Vec<(&'static str, u32)>,
}

/// Size in bits of one element of each datatype XNNPACK stores (`None`: not a datatype a value
/// may have). Exhaustive, so a datatype added by an ExecuTorch upgrade fails to compile here.
fn datatype_bits(datatype: xnn::XnnDatatype) -> Option<u64> {
    use xnn::XnnDatatype as D;
    match datatype {
        D::XnnDatatypeInvalid => None,
        D::XnnDatatypeQcint4 | D::XnnDatatypeQbint4 => Some(4),
        D::XnnDatatypeQint8
        | D::XnnDatatypeQuint8
        | D::XnnDatatypeQcint8
        | D::XnnDatatypeQdint8
        | D::XnnDatatypeQpint8 => Some(8),
        D::XnnDatatypeFp16 | D::XnnDatatypeBf16 => Some(16),
        D::XnnDatatypeFp32
        | D::XnnDatatypeQint32
        | D::XnnDatatypeQcint32
        | D::XnnDatatypeInt32
        | D::XnnDatatypePfp32 => Some(32),
    }
}

/// What the node checks need to know about a defined value.
struct ValueInfo {
    dims: Vec<u64>,
    /// Element count (checked not to overflow).
    numel: u64,
    /// Backed by constant data (weights): no node may write it.
    constant: bool,
    /// Flagged as an external input: filled by the caller, no node may write it.
    input: bool,
    /// Flagged as an external output.
    output: bool,
}

/// Activations (values that are neither constants nor external) may hold at most this many
/// elements, or the square of the largest constant or external value if that is more (see
/// `Graph::check_activation_sizes`).
const MIN_ACTIVATION_BOUND: u64 = 1 << 20;

/// A read the generated reader refused (an offset or length outside the payload).
fn unreadable(location: &str) -> impl Fn(planus::Error) -> Defect + '_ {
    move |e| defect(location, format!("cannot be read ({e})"))
}

/// Attaches the location to a read the generated reader refused.
trait At<T> {
    fn at(self, location: &str) -> Checked<T>;
}

impl<T> At<T> for planus::Result<T> {
    fn at(self, location: &str) -> Checked<T> {
        self.map_err(unreadable(location))
    }
}

/// The tag of a union member that could not be read: unknown, or a tag without its table.
fn bad_member(loc: &str, what: &str, read: planus::Result<()>) -> Defect {
    match read {
        Err(e) => match e.error_kind {
            ErrorKind::UnknownUnionTag { tag } => defect(loc, format!("has unknown {what} {tag}")),
            _ => unreadable(loc)(e),
        },
        Ok(()) => defect(loc, format!("has no {what}, or a {what} but no table")),
    }
}

struct Graph<'a, 'c> {
    graph: xnn::XnnGraphRef<'a>,
    ctx: &'c Context<'c>,
    /// Size of the header's constant region (`None`: no header, deprecated in-flatbuffer
    /// constant buffers instead).
    constants: Option<u64>,
    values: HashMap<u32, ValueInfo>,
}

impl<'a, 'c> Graph<'a, 'c> {
    fn read(
        graph: xnn::XnnGraphRef<'a>,
        constants: Option<u64>,
        ctx: &'c Context<'c>,
    ) -> Checked<Self> {
        let mut g = Graph {
            graph,
            ctx,
            constants,
            values: HashMap::new(),
        };
        let num_externs = graph.num_externs().at("graph")?;
        if num_externs > MAX_EXTERNS {
            return Err(defect(
                "graph",
                format!("declares {num_externs} external values, above {MAX_EXTERNS}"),
            ));
        }
        let xvalues = graph
            .xvalues()
            .at("graph values")?
            .ok_or_else(|| defect("graph", "has no value list"))?;
        let mut externals = HashSet::new();
        for (v, value) in xvalues.iter().enumerate() {
            let loc = format!("value {v}");
            let (id, info, external) = g.value(value, &loc, num_externs)?;
            if id == INVALID_ID || g.values.contains_key(&id) {
                return Err(defect(
                    &loc,
                    format!("has id {id}, already used or reserved"),
                ));
            }
            if let Some(e) = external {
                if !externals.insert(e) {
                    return Err(defect(&loc, format!("reuses external id {e}")));
                }
            }
            g.values.insert(id, info);
        }
        Ok(g)
    }

    /// Checks a value; returns its id, what nodes need of it, and its external id if any.
    fn value(
        &self,
        value: planus::Result<xnn::XValueRef<'a>>,
        loc: &str,
        num_externs: u32,
    ) -> Checked<(u32, ValueInfo, Option<u32>)> {
        let read = unreadable(loc);
        let member = value.and_then(|v| v.xvalue_union());
        let (tensor, quant) = match member {
            Ok(Some(xnn::XValueUnionRef::XnnTensorValue(tensor))) => (tensor, None),
            Ok(Some(xnn::XValueUnionRef::XnnQuantizedTensorValue(q))) => {
                let tensor = q
                    .tensor_value()
                    .at(loc)?
                    .ok_or_else(|| defect(loc, "is a quantized tensor without its tensor"))?;
                (tensor, Some(q))
            }
            other => return Err(bad_member(loc, "value type", other.map(drop))),
        };
        let datatype = tensor.datatype().map_err(|e| match e.error_kind {
            ErrorKind::UnknownEnumTag { source } => {
                defect(loc, format!("has unknown datatype {}", source.tag))
            }
            _ => read(e),
        })?;
        let bits = datatype_bits(datatype)
            .ok_or_else(|| defect(loc, format!("has unknown datatype {}", datatype as i16)))?;
        // The runtime passes the dims vector's length as the rank (`num_dims` is not read).
        let dims_vec = tensor
            .dims()
            .at(loc)?
            .ok_or_else(|| defect(loc, "has no dims"))?;
        if dims_vec.len() > MAX_DIMS {
            return Err(defect(
                loc,
                format!("has {} dims, XNNPACK allows {MAX_DIMS}", dims_vec.len()),
            ));
        }
        let dims: Vec<u64> = dims_vec.iter().map(u64::from).collect();
        let (numel, bytes) = tensor_bytes(&dims, bits)
            .ok_or_else(|| defect(loc, format!("dims {dims:?} overflow the element count")))?;
        let flags = tensor.flags().at(loc)?;
        if flags & !EXTERNAL_FLAGS != 0 {
            return Err(defect(loc, format!("has unknown flags {flags:#x}")));
        }
        let external_id = tensor.external_id().at(loc)?;
        let external = (external_id != INVALID_ID).then_some(external_id);
        if let Some(e) = external {
            if e >= num_externs {
                return Err(defect(
                    loc,
                    format!("has external id {e}, the graph declares {num_externs} externals"),
                ));
            }
            if let Some(n) = self.ctx.call_args.filter(|&n| e as usize >= n) {
                return Err(defect(
                    loc,
                    format!("has external id {e}, the delegate is called with {n} arguments"),
                ));
            }
        } else if flags != 0 {
            return Err(defect(loc, "is flagged external but has no external id"));
        }
        let constant = tensor.constant_buffer_idx().at(loc)?;
        let size = self.constant_size(constant, loc)?;
        if let Some(size) = size {
            if size < bytes {
                return Err(defect(
                    loc,
                    format!("dims {dims:?} need {bytes} bytes, constant {constant} holds {size}"),
                ));
            }
        }
        if let Some(q) = quant {
            self.quantization(q, &dims, loc)?;
        }
        let id = tensor.id_out().at(loc)?;
        let info = ValueInfo {
            dims,
            numel,
            constant: size.is_some(),
            input: flags & 1 != 0,
            output: flags & 2 != 0,
        };
        Ok((id, info, external))
    }

    /// Bytes available behind constant index `idx` (`None` for 0, "not a constant").
    fn constant_size(&self, idx: u32, loc: &str) -> Checked<Option<u64>> {
        if idx == 0 {
            return Ok(None);
        }
        let g = self.graph;
        let what = format!("{loc} constant {idx}");
        let read = unreadable(&what);
        let out_of_range = |len: usize| {
            defect(
                &what,
                format!("is out of range (the graph has {len} constants)"),
            )
        };
        let Some(region) = self.constants else {
            // No header: deprecated constant buffers inside the flatbuffer.
            let buffers = g
                .constant_buffer()
                .at(&what)?
                .ok_or_else(|| defect(&what, "refers to a constant buffer list that is absent"))?;
            let entry = buffers
                .get(idx as usize)
                .ok_or_else(|| out_of_range(buffers.len()))?
                .at(&what)?;
            let storage = entry
                .storage()
                .at(&what)?
                .ok_or_else(|| defect(&what, "has no storage"))?;
            return Ok(Some(storage.len() as u64));
        };
        let offsets = g
            .constant_data()
            .at(&what)?
            .ok_or_else(|| defect(&what, "refers to a constant data list that is absent"))?;
        let entry = offsets
            .get(idx as usize)
            .ok_or_else(|| out_of_range(offsets.len()))?
            .at(&what)?;
        let key = match entry.named_key() {
            Ok(key) => key,
            // A key that is not UTF-8 names nothing the program holds.
            Err(e) if matches!(e.error_kind, ErrorKind::InvalidUtf8 { .. }) => Some("\u{fffd}"),
            Err(e) => return Err(read(e)),
        };
        if let Some(key) = key {
            // The runtime looks the key up as a C string: it ends at the first NUL.
            let key = key.split('\0').next().unwrap_or_default();
            return match self.ctx.named_data.get(key) {
                Some(&size) => Ok(Some(size)),
                None => Err(defect(
                    &what,
                    format!("names data {key:?}, which the program does not hold"),
                )),
            };
        }
        let offset = entry.offset().at(&what)?;
        let size = entry.size().at(&what)?;
        if offset.checked_add(size).is_none_or(|e| e > region) {
            return Err(defect(
                &what,
                format!("range {offset}+{size} lies outside the {region}-byte constant data"),
            ));
        }
        Ok(Some(size))
    }

    fn quantization(
        &self,
        q: xnn::XnnQuantizedTensorValueRef<'a>,
        dims: &[u64],
        loc: &str,
    ) -> Checked<()> {
        let rank = dims.len();
        let channel = |dim: planus::Result<i32>| -> Checked<u64> {
            let dim = dim.at(loc)?;
            usize::try_from(dim)
                .ok()
                .and_then(|d| dims.get(d).copied())
                .ok_or_else(|| defect(loc, format!("channel dim {dim} is outside rank {rank}")))
        };
        let scales_cover = |available: u64, needed: u64, unit: &str| -> Checked<()> {
            if available < needed {
                return Err(defect(
                    loc,
                    format!("has {available} {unit} of scales where {needed} are read"),
                ));
            }
            Ok(())
        };
        use xnn::XnnQuantParamsRef as Q;
        match q.quant_params() {
            // One f32 scale per channel, inline or in a constant.
            Ok(Some(Q::PerChannelQuant(params))) => {
                let channels = channel(params.channel_dim())?;
                let inline = params
                    .scale()
                    .at(loc)?
                    .ok_or_else(|| defect(loc, "has no per-channel scale list"))?;
                let buffer = params.scale_buffer_idx().at(loc)?;
                match self.constant_size(buffer, loc)? {
                    Some(size) => scales_cover(size, channels * 4, "bytes"),
                    None => scales_cover(inline.len() as u64, channels, "entries"),
                }
            }
            // A scale and a zero point, validated by XNNPACK.
            Ok(Some(Q::PerTensorQuant(_))) => Ok(()),
            Ok(Some(Q::PerTokenDynamicQuant(params))) => {
                let n = params.num_nonbatch_dims().at(loc)?;
                if usize::try_from(n).map_or(true, |n| n > rank) {
                    return Err(defect(
                        loc,
                        format!("has {n} non-batch dims for rank {rank}"),
                    ));
                }
                Ok(())
            }
            // bf16 scales per block of `group_size` inputs.
            Ok(Some(Q::PerChannelGroupQuant(params))) => {
                if rank < 2 {
                    return Err(defect(
                        loc,
                        format!("is blockwise quantized with rank {rank}"),
                    ));
                }
                channel(params.channel_dim())?;
                let group = params.group_size().at(loc)?;
                if group <= 0 {
                    return Err(defect(loc, format!("has block size {group}")));
                }
                let buffer = params.scale_buffer_idx().at(loc)?;
                match self.constant_size(buffer, loc)? {
                    Some(size) => {
                        let n = u64::from(params.num_scales().at(loc)?);
                        scales_cover(size, n * 2, "bytes")
                    }
                    None => params
                        .scale()
                        .at(loc)?
                        .map(drop)
                        .ok_or_else(|| defect(loc, "has no block scale list")),
                }
            }
            other => Err(bad_member(loc, "quantization type", other.map(drop))),
        }
    }

    fn check_nodes(&self) -> Checked<()> {
        let xnodes = self
            .graph
            .xnodes()
            .at("graph nodes")?
            .ok_or_else(|| defect("graph", "has no node list"))?;
        self.check_activation_sizes()?;
        // Values written so far: XNNPACK runs nodes in order, and reading an activation no
        // earlier node wrote, or writing a weight or an input, dereferences memory that is
        // not there (segfault) or read-only.
        let mut written = HashSet::new();
        for (n, node) in xnodes.iter().enumerate() {
            let loc = format!("node {n}");
            let node = node.at(&loc)?;
            let member = match node.xnode_union() {
                Ok(Some(member)) => member,
                other => return Err(bad_member(&loc, "node type", other.map(drop))),
            };
            node.output_min_max().at(&loc)?;
            let io = self.node(member, &loc)?;
            for &(field, id) in &io.inputs {
                // `node` only returns defined ids.
                let Some(v) = self.values.get(&id) else {
                    continue;
                };
                if !(v.constant || v.input || written.contains(&id)) {
                    return Err(defect(
                        &loc,
                        format!("{field} reads value {id}, which no earlier node writes"),
                    ));
                }
            }
            for &(field, id) in &io.outputs {
                let Some(v) = self.values.get(&id) else {
                    continue;
                };
                if v.constant || v.input || !written.insert(id) {
                    return Err(defect(
                        &loc,
                        format!("{field} writes value {id}, a weight, an input or already written"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Bounds activations. XNNPACK sizes its buffers from the declared dims of values that
    /// are neither constants nor external, while it computes with shapes inferred from the
    /// inputs, so a corrupted activation dim can ask for many gigabytes (a flipped high bit
    /// in a [2, 16] activation requested 16 GiB; the process was killed). The bound: the
    /// square of the largest constant or external value's element count, but at least 2^20.
    /// Every node XNNPACK runs produces at most the product of its inputs' element counts
    /// (linear, matrix products, broadcasting), and transformer graphs stay far below the
    /// square (e.g. attention scores heads x T x T against an input of T x hidden).
    fn check_activation_sizes(&self) -> Checked<()> {
        let largest = self
            .values
            .values()
            .filter(|v| v.constant || v.input || v.output)
            .map(|v| v.numel)
            .max()
            .unwrap_or(0);
        let bound = largest.saturating_mul(largest).max(MIN_ACTIVATION_BOUND);
        let mut ids: Vec<_> = self.values.iter().collect();
        ids.sort_by_key(|(id, _)| **id);
        for (id, v) in ids {
            if !(v.constant || v.input || v.output) && v.numel > bound {
                return Err(defect(
                    format!("value id {id}"),
                    format!(
                        "activation dims {:?} hold {} elements, above the bound {bound}",
                        v.dims, v.numel
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a node and returns the value ids it reads and writes (with their fields).
    /// Exhaustive, so a node type added by an ExecuTorch upgrade fails to compile here.
    fn node(&self, member: xnn::XNodeUnionRef<'a>, loc: &str) -> Checked<Io> {
        type Field = (&'static str, planus::Result<u32>);
        // Inputs, optional inputs (a bias may be absent), outputs.
        let ids = |inputs: &[Field], optional: &[Field], outputs: &[Field]| -> Checked<Io> {
            let mut io = Io::default();
            let fields = inputs.iter().map(|f| (f, false, false));
            let fields = fields
                .chain(optional.iter().map(|f| (f, true, false)))
                .chain(outputs.iter().map(|f| (f, false, true)));
            for ((field, id), optional, output) in fields {
                let id = id.at(loc)?;
                if optional && id == INVALID_ID {
                    continue;
                }
                if !self.values.contains_key(&id) {
                    return Err(defect(
                        loc,
                        format!("{field} names value id {id}, which is not defined"),
                    ));
                }
                if output {
                    io.outputs.push((field, id));
                } else {
                    io.inputs.push((field, id));
                }
            }
            Ok(io)
        };
        let uint_list = |list: planus::Result<Option<Vector<'a, u32>>>, what: &str| {
            let list = list
                .at(loc)?
                .ok_or_else(|| defect(loc, format!("has no {what}")))?;
            Checked::Ok(list.iter().collect::<Vec<u32>>())
        };
        // One input and one output, the common shape.
        let unary = |input, output| ids(&[("input_id", input)], &[], &[("output_id", output)]);
        use xnn::XNodeUnionRef as N;
        match member {
            N::XnnAdd(n)
            | N::XnnDiv(n)
            | N::XnnMinimum(n)
            | N::XnnMultiply(n)
            | N::XnnSubtract(n)
            | N::XnnMaximum(n)
            | N::XnnpReLu(n)
            | N::XnnBatchMatrixMultiply(n) => ids(
                &[("input1_id", n.input1_id()), ("input2_id", n.input2_id())],
                &[],
                &[("output_id", n.output_id())],
            ),
            N::XnnSoftmax(n)
            | N::XnnSigmoid(n)
            | N::XnnClamp(n)
            | N::XnnFloor(n)
            | N::XnnConvert(n)
            | N::XnnGlobalAvgPooling2d(n)
            | N::XnnSquareRoot(n)
            | N::XnnCeiling(n)
            | N::XnnHardswish(n)
            | N::XnnNegate(n)
            | N::XnnSquare(n)
            | N::XnnAbs(n)
            | N::XnnReciprocalSquareRoot(n)
            | N::XnnLog(n)
            | N::XnnGelu(n)
            | N::XnnTanh(n)
            | N::XnnExp(n)
            | N::XnnSin(n)
            | N::XnnCopy(n)
            | N::XnnCos(n) => unary(n.input_id(), n.output_id()),
            N::XnnFullyConnected(n) => ids(
                &[("input1_id", n.input1_id()), ("filter_id", n.filter_id())],
                &[("bias_id", n.bias_id())],
                &[("output_id", n.output_id())],
            ),
            N::XnnStaticTranspose(n) => {
                let perm = uint_list(n.perm(), "permutation")?;
                let mut seen = [false; MAX_DIMS];
                let is_perm = perm.len() <= MAX_DIMS
                    && perm.iter().all(|&p| match seen.get_mut(p as usize) {
                        Some(s) if (p as usize) < perm.len() && !*s => {
                            *s = true;
                            true
                        }
                        _ => false,
                    });
                if !is_perm {
                    return Err(defect(loc, format!("permutation {perm:?} is not one")));
                }
                unary(n.input_id(), n.output_id())
            }
            N::XnnStaticResizeBilinear2D(n) => unary(n.input_id(), n.output_id()),
            N::XnnStaticConstantPad(n) => {
                let io = unary(n.input_id(), n.output_id())?;
                let rank = io
                    .inputs
                    .first()
                    .and_then(|(_, id)| self.values.get(id))
                    .map_or(0, |v| v.dims.len());
                for (list, what) in [
                    (n.pre_paddings(), "pre-paddings"),
                    (n.post_paddings(), "post-paddings"),
                ] {
                    let list = uint_list(list, what)?;
                    if list.len() < rank {
                        return Err(defect(
                            loc,
                            format!("has {} {what} for a rank-{rank} input", list.len()),
                        ));
                    }
                }
                Ok(io)
            }
            N::XnnConv2d(n) | N::XnnDepthwiseConv2d(n) | N::XnnConvTranspose2d(n) => {
                let depthwise = matches!(member, N::XnnDepthwiseConv2d(_));
                if depthwise && n.group_input_channels().at(loc)? == 0 {
                    return Err(defect(loc, "has 0 group input channels (a divisor)"));
                }
                ids(
                    &[("input1_id", n.input1_id()), ("filter_id", n.filter_id())],
                    &[("bias_id", n.bias_id())],
                    &[("output_id", n.output_id())],
                )
            }
            N::XnnAvgPooling2d(n) | N::XnnMaxPooling2d(n) => unary(n.input_id(), n.output_id()),
            N::XnnStaticReshape(n) => {
                let shape = uint_list(n.new_shape(), "new shape")?;
                if shape.len() > MAX_DIMS {
                    return Err(defect(loc, format!("reshapes to rank {}", shape.len())));
                }
                unary(n.input_id(), n.output_id())
            }
            N::XnnArgMaxPooling2d(n) => ids(
                &[("input_id", n.input_id())],
                &[],
                &[
                    ("output_value_id", n.output_value_id()),
                    ("output_index_id", n.output_index_id()),
                ],
            ),
            N::XnnLeakyReLu(n) => unary(n.input_id(), n.output_id()),
            N::Xnnelu(n) => unary(n.input_id(), n.output_id()),
            N::XnnConcatenate2(n)
            | N::XnnConcatenate3(n)
            | N::XnnConcatenate4(n)
            | N::XnnConcatenate5(n) => {
                let mut inputs = vec![("input1_id", n.input1_id()), ("input2_id", n.input2_id())];
                if !matches!(member, N::XnnConcatenate2(_)) {
                    inputs.push(("input3_id", n.input3_id()));
                }
                if matches!(member, N::XnnConcatenate4(_) | N::XnnConcatenate5(_)) {
                    inputs.push(("input4_id", n.input4_id()));
                }
                if matches!(member, N::XnnConcatenate5(_)) {
                    inputs.push(("input5_id", n.input5_id()));
                }
                ids(&inputs, &[], &[("output_id", n.output_id())])
            }
            N::XnnStaticSlice(n) => {
                let offsets = uint_list(n.offsets(), "offsets")?;
                let sizes = uint_list(n.sizes(), "sizes")?;
                if offsets.len() != sizes.len() || sizes.len() > MAX_DIMS {
                    return Err(defect(
                        loc,
                        format!("has {} offsets and {} sizes", offsets.len(), sizes.len()),
                    ));
                }
                unary(n.input_id(), n.output_id())
            }
            N::XnnScaledDotProductAttention(n) => ids(
                &[
                    ("query_id", n.query_id()),
                    ("key_id", n.key_id()),
                    ("value_id", n.value_id()),
                    ("scale_id", n.scale_id()),
                    ("mask_id", n.mask_id()),
                ],
                &[],
                &[("output_id", n.output_id())],
            ),
        }
    }
}

/// Element count and bytes of a tensor of these dims and element size (4-bit types pack two
/// per byte along the last dim, each row rounded up), or `None` if either overflows.
fn tensor_bytes(dims: &[u64], bits: u64) -> Option<(u64, u64)> {
    let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    let bytes = if bits == 4 {
        let last = dims.last().copied().unwrap_or(1);
        let rows = numel.checked_div(last).unwrap_or(0);
        rows.checked_mul(last.div_ceil(2))?
    } else {
        numel.checked_mul(bits / 8)?
    };
    Some((numel, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    // The tests patch bytes at fields they find with the raw reader, independently of the
    // generated one the checks use.
    use crate::pte::verify::flatbuf::{Table, Vector};
    use std::ops::Range;

    /// A fixture program: its bytes, its named data sizes, and its XNNPACK payloads' ranges.
    struct Fixture {
        file: Vec<u8>,
        named: HashMap<String, u64>,
        payloads: Vec<Range<usize>>,
    }

    /// Reads a fixture and finds its XNNPACK payloads through the program's delegate tables
    /// (independently of `integrity`, which calls `check` the same way).
    fn fixture(rel: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read(path).unwrap();
        let program = Table::root(&file).unwrap();
        let segments = program.vector(4, 4).unwrap().unwrap_or(Vector::empty());
        let segment = |i: usize| {
            let s = segments.table(i).unwrap();
            (s.u64(0, 0).unwrap(), s.u64(1, 0).unwrap())
        };
        let mut named = HashMap::new();
        if let Some(entries) = program.vector(7, 4).unwrap() {
            for i in 0..entries.len() {
                let e = entries.table(i).unwrap();
                let size = segment(e.u32(1, 0).unwrap() as usize).1;
                named.insert(e.string(0).unwrap().unwrap(), size);
            }
        }
        let base = crate::pte::verify::segment_base(&file).unwrap_or(0);
        let mut payloads = Vec::new();
        let plans = program.vector(1, 4).unwrap().unwrap();
        for p in 0..plans.len() {
            let Some(delegates) = plans.table(p).unwrap().vector(7, 4).unwrap() else {
                continue;
            };
            for d in 0..delegates.len() {
                let delegate = delegates.table(d).unwrap();
                if delegate.string(0).unwrap().as_deref() != Some(BACKEND_ID) {
                    continue;
                }
                let processed = delegate.table(1).unwrap().unwrap();
                let index = processed.u32(1, 0).unwrap() as usize;
                if processed.u8(0, 0).unwrap() == 0 {
                    let inline = program.vector(3, 4).unwrap().unwrap().table(index).unwrap();
                    let data = inline.vector(0, 1).unwrap().unwrap();
                    payloads.push(data.position(0)..data.position(0) + data.len());
                } else {
                    let (offset, size) = segment(index);
                    let start = (base + offset) as usize;
                    payloads.push(start..start + size as usize);
                }
            }
        }
        Fixture {
            file,
            named,
            payloads,
        }
    }

    impl Fixture {
        fn check(&self, i: usize, call_args: Option<usize>) -> Checked<()> {
            let payload = &self.file[self.payloads[i].clone()];
            let ctx = Context {
                named_data: &self.named,
                call_args,
            };
            check(payload, payload.len() as u64, &ctx)
        }

        /// The graph table of payload `i` and the payload's start in the file.
        fn graph(&self, i: usize) -> (Table<'_>, usize) {
            let start = self.payloads[i].start;
            let payload = &self.file[self.payloads[i].clone()];
            let h = header(payload).unwrap();
            let fb_start = start + h.flatbuffer_offset as usize;
            let fb_end = fb_start + h.flatbuffer_size as usize;
            (Table::root(&self.file[fb_start..fb_end]).unwrap(), fb_start)
        }

        /// Writes `bytes` at `pos` of the flatbuffer of payload `i`.
        fn patch(&mut self, i: usize, pos: usize, bytes: &[u8]) {
            let (_, fb_start) = self.graph(i);
            self.file[fb_start + pos..fb_start + pos + bytes.len()].copy_from_slice(bytes);
        }
    }

    fn tensor_of(graph: Table<'_>, v: usize) -> Table<'_> {
        let value = graph.vector(2, 4).unwrap().unwrap().table(v).unwrap();
        let body = value.table(1).unwrap().unwrap();
        match value.u8(0, 0).unwrap() {
            1 => body,
            _ => body.table(0).unwrap().unwrap(),
        }
    }

    fn rejected(result: Checked<()>, needle: &str) {
        let d = result.expect_err("the corruption must be rejected");
        let text = format!("{}: {}", d.location, d.problem);
        assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    }

    /// The fixtures' dims: value 1 is the first linear layer's [16, 8] weight, value 6 the
    /// [2, 4] output (external id 1); node 0 is that layer (xnnpack.json describes the model).
    fn xnnpack() -> Fixture {
        let f = fixture("basic/xnnpack.pte");
        assert_eq!(f.payloads.len(), 1);
        f
    }

    #[test]
    fn accepts_every_fixture_payload() {
        let mut checked = 0;
        let root = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<String> = ["basic", "pte"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(format!("{root}/{dir}")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pte"))
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        files.sort();
        for rel in &files {
            let f = fixture(rel.trim_start_matches('/'));
            for i in 0..f.payloads.len() {
                f.check(i, None)
                    .unwrap_or_else(|d| panic!("{rel} payload {i}: {d:?}"));
                checked += 1;
            }
        }
        assert!(checked > 2, "only {checked} XNNPACK payloads found");
        let inline = fixture("basic/xnnpack_inline.pte");
        assert_eq!(inline.payloads.len(), 1);
        assert!(
            inline.payloads[0].end
                < crate::pte::verify::segment_base(&inline.file).unwrap_or(u64::MAX) as usize
        );
    }

    #[test]
    fn rejects_a_weight_dim_larger_than_its_data() {
        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        let dims = tensor_of(graph, 1).vector(2, 4).unwrap().unwrap();
        assert_eq!((dims.u32(0).unwrap(), dims.u32(1).unwrap()), (16, 8));
        let at = dims.position(0);
        f.patch(0, at, &17u32.to_le_bytes());
        rejected(f.check(0, None), "need 544 bytes, constant 1 holds 512");
        // Smaller dims fit the data: XNNPACK's shape checks decide, the payload check passes.
        f.patch(0, at, &8u32.to_le_bytes());
        f.check(0, None).unwrap();
    }

    #[test]
    fn rejects_dims_whose_product_overflows() {
        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        // Value 0 is the (non-constant) input: no data bounds it, only the byte count.
        let dims = tensor_of(graph, 0).vector(2, 4).unwrap().unwrap();
        let (a, b) = (dims.position(0), dims.position(1));
        f.patch(0, a, &u32::MAX.to_le_bytes());
        f.check(0, None).unwrap();
        f.patch(0, b, &u32::MAX.to_le_bytes());
        rejected(f.check(0, None), "overflow the element count");
    }

    #[test]
    fn rejects_a_node_naming_an_undefined_value() {
        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        let node = graph.vector(1, 4).unwrap().unwrap().table(0).unwrap();
        let body = node.table(1).unwrap().unwrap();
        // Field 1 is the filter (value 1; a zero id would not be stored at all).
        assert_eq!(body.u32(1, 0).unwrap(), 1);
        let at = body.position(1).unwrap();
        f.patch(0, at, &99u32.to_le_bytes());
        rejected(f.check(0, None), "value id 99, which is not defined");
    }

    #[test]
    fn rejects_a_node_writing_a_weight_or_reading_an_unwritten_value() {
        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        let nodes = graph.vector(1, 4).unwrap().unwrap();
        // Node 0 (first linear layer) writes value 3; node 1 reads it.
        let first = nodes.table(0).unwrap().table(1).unwrap().unwrap();
        assert_eq!(first.u32(3, 0).unwrap(), 3);
        let output = first.position(3).unwrap();
        // Writing the bias (value 2) instead segfaulted the runtime.
        f.patch(0, output, &2u32.to_le_bytes());
        rejected(f.check(0, None), "output_id writes value 2");
        // Writing the network's output leaves value 3 unwritten when node 1 reads it.
        f.patch(0, output, &6u32.to_le_bytes());
        rejected(
            f.check(0, None),
            "reads value 3, which no earlier node writes",
        );
    }

    #[test]
    fn rejects_an_activation_too_large_for_its_graph() {
        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        // Value 3 is the [2, 16] activation between the two layers.
        let dims = tensor_of(graph, 3).vector(2, 4).unwrap().unwrap();
        assert_eq!((dims.u32(0).unwrap(), dims.u32(1).unwrap()), (2, 16));
        let at = dims.position(1);
        // Bit 31 made XNNPACK reserve 16 GiB for it.
        f.patch(0, at, &(16u32 | 1 << 31).to_le_bytes());
        rejected(f.check(0, None), "above the bound 1048576");
        // A larger but plausible activation passes (XNNPACK's shape checks decide).
        f.patch(0, at, &4096u32.to_le_bytes());
        f.check(0, None).unwrap();
    }

    #[test]
    fn rejects_unknown_tags_and_tags_without_tables() {
        let f = xnnpack();
        let (graph, _) = f.graph(0);
        let node = graph.vector(1, 4).unwrap().unwrap().table(0).unwrap();
        let value = graph.vector(2, 4).unwrap().unwrap().table(0).unwrap();
        let (node_tag, value_tag) = (node.position(0).unwrap(), value.position(0).unwrap());
        let value_table_entry = value.vtable_entry(1);

        let mut f = xnnpack();
        // The schema's `XNodeUnion` has 47 members.
        f.patch(0, node_tag, &[48]);
        rejected(f.check(0, None), "unknown node type 48");

        let mut f = xnnpack();
        f.patch(0, value_tag, &[3]);
        rejected(f.check(0, None), "unknown value type 3");

        // Removing the union's table from the (shared) vtable leaves the tag pointing at nothing.
        let mut f = xnnpack();
        f.patch(0, value_table_entry, &[0, 0]);
        rejected(f.check(0, None), "but no table");
    }

    #[test]
    fn rejects_external_ids_the_call_does_not_pass() {
        let f = xnnpack();
        // forward passes the input and the output: external ids 0 and 1.
        f.check(0, Some(2)).unwrap();
        rejected(f.check(0, Some(1)), "called with 1 arguments");

        let mut f = xnnpack();
        let (graph, _) = f.graph(0);
        let output = tensor_of(graph, 6);
        assert_eq!(output.u32(4, 0).unwrap(), 1);
        let at = output.position(4).unwrap();
        f.patch(0, at, &0u32.to_le_bytes());
        rejected(f.check(0, None), "reuses external id 0");
        f.patch(0, at, &7u32.to_le_bytes());
        rejected(f.check(0, None), "graph declares 2 externals");
    }

    #[test]
    fn rejects_named_data_the_program_lacks() {
        let mut f = xnnpack();
        f.named.clear();
        rejected(f.check(0, None), "which the program does not hold");
    }

    #[test]
    fn rejects_a_bad_header_or_identifier() {
        let f = xnnpack();
        let payload = &f.file[f.payloads[0].clone()];
        rejected(
            check(&payload[..20], 20, &ctx_of(&f)),
            "shorter than the 30-byte",
        );
        let mut p = payload.to_vec();
        p[14..18].copy_from_slice(&u32::MAX.to_le_bytes());
        rejected(check(&p, p.len() as u64, &ctx_of(&f)), "flatbuffer range");
        let mut p = payload.to_vec();
        p[22..30].copy_from_slice(&u64::MAX.to_le_bytes());
        rejected(
            check(&p, p.len() as u64, &ctx_of(&f)),
            "constant data range",
        );
        let mut p = payload.to_vec();
        let fo = header(&p).unwrap().flatbuffer_offset as usize;
        p[fo + 7] = b'9';
        rejected(check(&p, p.len() as u64, &ctx_of(&f)), "not XN00 or XN01");
    }

    fn ctx_of(f: &Fixture) -> Context<'_> {
        Context {
            named_data: &f.named,
            call_args: None,
        }
    }

    #[test]
    fn rejects_per_channel_scales_that_miss_channels() {
        let mut f = fixture("pte/sdar_cached_int8.pte");
        // The first per-channel quantized weight: its scales live in a constant buffer, and
        // the inline scale list is present but empty.
        let found = (0..f.payloads.len()).find_map(|i| {
            let (graph, _) = f.graph(i);
            let values = graph.vector(2, 4).unwrap().unwrap();
            (0..values.len()).find_map(|v| {
                let value = values.table(v).unwrap();
                let q = value.table(1).unwrap()?;
                if value.u8(0, 0).unwrap() != 2 || q.u8(1, 0).unwrap() != 1 {
                    return None;
                }
                let params = q.table(2).unwrap().unwrap();
                assert_eq!(params.vector(0, 4).unwrap().map(|s| s.len()), Some(0));
                Some((i, params.position(2).unwrap()))
            })
        });
        let (i, scale_buffer) = found.expect("the int8 fixture has per-channel weights");
        f.check(i, None).unwrap();
        // Without the buffer the runtime reads one scale per channel from the empty list.
        f.patch(i, scale_buffer, &0u32.to_le_bytes());
        rejected(f.check(i, None), "has 0 entries of scales where");
    }

    #[test]
    fn tensor_bytes_counts_packed_rows_and_overflow() {
        let bits = |d| datatype_bits(d).unwrap();
        use xnn::XnnDatatype as D;
        assert_eq!(
            tensor_bytes(&[2, 3], bits(D::XnnDatatypeFp32)),
            Some((6, 24))
        );
        assert_eq!(tensor_bytes(&[], bits(D::XnnDatatypeFp16)), Some((1, 2))); // scalar
                                                                               // qcint4: 3 rows of 3 bytes
        assert_eq!(
            tensor_bytes(&[3, 5], bits(D::XnnDatatypeQcint4)),
            Some((15, 9))
        );
        assert_eq!(tensor_bytes(&[u64::from(u32::MAX); 3], 32), None);
        assert_eq!(tensor_bytes(&[1 << 62], 32), None); // elements fit, bytes do not
    }

    /// Arbitrary single-byte changes give `Ok` or a defect, never a panic.
    #[test]
    fn never_panics_on_corrupted_payloads() {
        let f = xnnpack();
        let payload = f.file[f.payloads[0].clone()].to_vec();
        let mut caught = 0;
        for pos in 0..payload.len() {
            for value in [0x00, 0xff, payload[pos] ^ 0x80, payload[pos] ^ 0x01] {
                let mut p = payload.clone();
                p[pos] = value;
                caught += usize::from(check(&p, p.len() as u64, &ctx_of(&f)).is_err());
            }
        }
        for keep in 0..payload.len() {
            let _ = check(&payload[..keep], keep as u64, &ctx_of(&f));
        }
        assert!(caught > payload.len(), "only {caught} corruptions rejected");
    }
}
