// diffulex_et.cpp: the C ABI declared in diffulex_et.h, over ExecuTorch's extension::Module.
//
// Every exported function runs its body through `barrier()`, which catches every C++
// exception and turns it into a status plus message, so nothing unwinds into Rust.

#include "diffulex_et.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

// module.h itself uses a member it marks deprecated; that warning is not about this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/data_loader/mmap_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/function_ref.h>
#include <executorch/runtime/kernel/operator_registry.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>
#pragma GCC diagnostic pop

#ifdef ET_USE_THREADPOOL
// The 1.5.1 wheel ships libexecutorch_threadpool but not threadpool.h (which would also need
// pthreadpool.h), so the four members used here are declared by hand. Only these declarations
// matter to the linker: the class is never constructed or inspected here, and the signatures
// (hence the mangled names and return types) are those of ExecuTorch 1.5.1.
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
  void run(executorch::runtime::FunctionRef<void(size_t)> fn, size_t range);
};
ThreadPool* get_threadpool();
} // namespace executorch::extension::threadpool
#endif

namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::aten::TensorShapeDynamism;
using executorch::extension::BufferDataLoader;
using executorch::extension::MmapDataLoader;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::FreeableBuffer;
using executorch::runtime::Method;
using executorch::runtime::Program;
using executorch::runtime::Tag;

constexpr int32_t kInternal = static_cast<int32_t>(Error::Internal);
constexpr int32_t kInvalidArgument = static_cast<int32_t>(Error::InvalidArgument);

// ---------------------------------------------------------------------------
// Logging: route ExecuTorch's PAL log through a level filter, and keep the error lines of the
// current call so they can be put into the error message instead of only on stderr.

// Fatal by default: error lines are returned inside dlx_error messages, so printing them too
// would only duplicate them; fatal lines precede an abort and must not be lost.
std::atomic<int32_t> g_log_level{DLX_LOG_FATAL};
thread_local std::string t_log_tail;
constexpr size_t kLogTailMax = 2048;

int32_t level_of(et_pal_log_level_t level) {
  switch (level) {
    case kDebug:
      return DLX_LOG_DEBUG;
    case kInfo:
      return DLX_LOG_INFO;
    case kFatal:
      return DLX_LOG_FATAL;
    default:
      return DLX_LOG_ERROR;
  }
}

const char* base_name(const char* path) {
  if (path == nullptr) {
    return "?";
  }
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

void emit_log(
    et_timestamp_t /*timestamp*/,
    et_pal_log_level_t level,
    const char* filename,
    const char* /*function*/,
    size_t line,
    const char* message,
    size_t length) {
  const int32_t lvl = level_of(level);
  // Drop a trailing newline so both the console line and the captured tail stay one line.
  while (length > 0 && (message[length - 1] == '\n' || message[length - 1] == '\r')) {
    length--;
  }
  if (lvl >= DLX_LOG_ERROR && t_log_tail.size() < kLogTailMax) {
    if (!t_log_tail.empty()) {
      t_log_tail += " | ";
    }
    t_log_tail.append(message, length);
  }
  if (lvl >= g_log_level.load(std::memory_order_relaxed)) {
    std::fprintf(
        stderr,
        "[executorch %c %s:%zu] %.*s\n",
        static_cast<char>(level),
        base_name(filename),
        line,
        static_cast<int>(length),
        message);
  }
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    executorch::runtime::register_pal(
        executorch::runtime::PalImpl::create(emit_log, __FILE__));
    executorch::runtime::runtime_init();
  });
}

// ---------------------------------------------------------------------------
// Error reporting.

const char* error_name(int32_t code) {
  switch (static_cast<Error>(code)) {
    case Error::Ok:
      return "Ok";
    case Error::Internal:
      return "Internal";
    case Error::InvalidState:
      return "InvalidState";
    case Error::EndOfMethod:
      return "EndOfMethod";
    case Error::AlreadyLoaded:
      return "AlreadyLoaded";
    case Error::NotSupported:
      return "NotSupported";
    case Error::NotImplemented:
      return "NotImplemented";
    case Error::InvalidArgument:
      return "InvalidArgument";
    case Error::InvalidType:
      return "InvalidType";
    case Error::OperatorMissing:
      return "OperatorMissing";
    case Error::RegistrationExceedingMaxKernels:
      return "RegistrationExceedingMaxKernels";
    case Error::RegistrationAlreadyRegistered:
      return "RegistrationAlreadyRegistered";
    case Error::NotFound:
      return "NotFound";
    case Error::MemoryAllocationFailed:
      return "MemoryAllocationFailed";
    case Error::AccessFailed:
      return "AccessFailed";
    case Error::InvalidProgram:
      return "InvalidProgram";
    case Error::InvalidExternalData:
      return "InvalidExternalData";
    case Error::OutOfResources:
      return "OutOfResources";
    case Error::DelegateInvalidCompatibility:
      return "DelegateInvalidCompatibility";
    case Error::DelegateMemoryAllocationFailed:
      return "DelegateMemoryAllocationFailed";
    case Error::DelegateInvalidHandle:
      return "DelegateInvalidHandle";
    default:
      return "Unknown";
  }
}

// The outcome of a shim body: a status and, on failure, what was being done.
struct Status {
  int32_t code;
  std::string context;
};

Status ok() {
  return Status{DLX_OK, std::string()};
}

Status fail(Error error, std::string context) {
  return Status{static_cast<int32_t>(error), std::move(context)};
}

void write_error(dlx_error* err, int32_t code, const std::string& text) {
  if (err == nullptr) {
    return;
  }
  err->code = code;
  const size_t n = text.size() < DLX_ERROR_MESSAGE_LEN - 1 ? text.size() : DLX_ERROR_MESSAGE_LEN - 1;
  std::memcpy(err->message, text.data(), n);
  err->message[n] = '\0';
}

void report(dlx_error* err, const Status& status) {
  std::string text = status.context;
  text += ": ";
  text += error_name(status.code);
  if (!t_log_tail.empty()) {
    text += " (runtime log: ";
    text += t_log_tail;
    text += ")";
  }
  write_error(err, status.code, text);
}

// The exception barrier: one per exported function.
template <class F>
int32_t barrier(dlx_error* err, F&& body) noexcept {
  try {
    init_once();
    t_log_tail.clear();
    Status status = body();
    if (status.code != DLX_OK) {
      report(err, status);
    }
    return status.code;
  } catch (const std::exception& e) {
    write_error(err, kInternal, std::string("C++ exception: ") + e.what());
  } catch (...) {
    write_error(err, kInternal, "unknown C++ exception");
  }
  return kInternal;
}

std::string quoted(const char* method) {
  return std::string("method '") + method + "'";
}

} // namespace

// The module: ExecuTorch's Module plus the values of the last execute. Deriving from Module
// gives access to its protected `methods_`, which is how a loaded Method is reached without the
// deprecated `Module::method()`.
struct dlx_module : public executorch::extension::Module {
  using executorch::extension::Module::Module;

  // A scalar output's value; the output's data pointer points here.
  struct Scalar {
    int64_t i = 0;
    double d = 0.0;
    bool b = false;
  };

  std::vector<EValue> outputs;
  std::vector<Scalar> scalars;
  // Inputs of the last execute: a non-memory-planned input stays referenced by the method,
  // and an output may alias it, so such inputs are copied here (see dlx_module_execute).
  std::vector<TensorPtr> inputs;
  std::vector<std::vector<uint8_t>> input_copies;
  // Named data handed out by dlx_module_named_data, by key: each buffer stays loaded (for a
  // file, mapped) until the module is freed, so the pointers given out stay valid. Declared in
  // the derived class, so the buffers are released before the base Module frees its data loader.
  std::unordered_map<std::string, FreeableBuffer> named_data;

  // Loads `name` if needed and returns the Method.
  Status loaded(const char* name, Method** out) {
    const std::string key(name);
    // No planned memory of our own: Module allocates it as zero-filled vectors, and the .pte
    // contract relies on that (KV-cache slots no call has written yet are read with weight 0,
    // so they must be finite; docs/pte-contract.md, "Cached programs").
    Error error = load_method(key);
    if (error != Error::Ok) {
      return fail(error, "loading " + quoted(name));
    }
    auto it = methods_.find(key);
    if (it == methods_.end() || !it->second.method) {
      return fail(Error::Internal, "looking up loaded " + quoted(name));
    }
    *out = it->second.method.get();
    return ok();
  }
};

namespace {

Status check_name(dlx_module* module, const char* method) {
  if (module == nullptr || method == nullptr) {
    return fail(Error::InvalidArgument, "null module or method name");
  }
  auto names = module->method_names();
  if (!names.ok()) {
    return fail(names.error(), "listing methods");
  }
  if (names->count(method) == 0) {
    return fail(Error::NotFound, std::string("no ") + quoted(method) + " in the program");
  }
  return ok();
}

Status finish_load(std::unique_ptr<dlx_module> module, int32_t verification, dlx_module** out) {
  const Program::Verification level = verification == DLX_VERIFY_MINIMAL
      ? Program::Verification::Minimal
      : Program::Verification::InternalConsistency;
  Error error = module->load(level);
  if (error != Error::Ok) {
    return fail(error, "loading program");
  }
  *out = module.release();
  return ok();
}

void fill_scalar(dlx_value_info* out, int32_t dtype, const void* data, size_t nbytes) {
  out->dtype = dtype;
  out->ndim = 0;
  out->sizes = nullptr;
  out->dynamism = -1;
  out->nbytes = nbytes;
  out->data = data;
}

} // namespace

extern "C" {

void dlx_set_log_level(int32_t level) {
  try {
    init_once();
  } catch (...) {
    // Initialisation only registers function pointers; nothing to report if it fails.
  }
  g_log_level.store(level, std::memory_order_relaxed);
}

int32_t dlx_module_load_file(
    const char* path,
    int32_t verification,
    dlx_module** out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (path == nullptr || out == nullptr) {
      return fail(Error::InvalidArgument, "null path or output pointer");
    }
    *out = nullptr;
    // NoMlock: locking every page of a large model would fail or stall on small devices.
    auto loader = MmapDataLoader::from(path, MmapDataLoader::MlockConfig::NoMlock);
    if (!loader.ok()) {
      return fail(loader.error(), std::string("mapping '") + path + "'");
    }
    auto module = std::make_unique<dlx_module>(
        std::make_unique<MmapDataLoader>(std::move(loader.get())));
    return finish_load(std::move(module), verification, out);
  });
}

int32_t dlx_module_load_buffer(
    const void* data,
    size_t len,
    int32_t verification,
    dlx_module** out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (data == nullptr || out == nullptr) {
      return fail(Error::InvalidArgument, "null buffer or output pointer");
    }
    *out = nullptr;
    auto module = std::make_unique<dlx_module>(std::make_unique<BufferDataLoader>(data, len));
    return finish_load(std::move(module), verification, out);
  });
}

void dlx_module_free(dlx_module* module) {
  try {
    delete module;
  } catch (...) {
    // Destructors do not throw in practice; swallowing keeps the ABI promise regardless.
  }
}

int32_t dlx_module_num_methods(dlx_module* module, size_t* out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (module == nullptr || out == nullptr) {
      return fail(Error::InvalidArgument, "null module or output pointer");
    }
    auto program = module->program();
    if (!program) {
      return fail(Error::InvalidState, "program not loaded");
    }
    *out = program->num_methods();
    return ok();
  });
}

int32_t dlx_module_method_name(
    dlx_module* module,
    size_t index,
    const char** out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (module == nullptr || out == nullptr) {
      return fail(Error::InvalidArgument, "null module or output pointer");
    }
    auto program = module->program();
    if (!program) {
      return fail(Error::InvalidState, "program not loaded");
    }
    auto name = program->get_method_name(index);
    if (!name.ok()) {
      return fail(name.error(), "reading method name " + std::to_string(index));
    }
    *out = name.get();
    return ok();
  });
}

int32_t dlx_method_counts(
    dlx_module* module,
    const char* method,
    size_t* num_inputs,
    size_t* num_outputs,
    size_t* num_backends,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    Status named = check_name(module, method);
    if (named.code != DLX_OK) {
      return named;
    }
    if (num_inputs == nullptr || num_outputs == nullptr || num_backends == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    // The program's MethodMeta: the method is not loaded (loading initialises its delegates,
    // and XNNPACK then packs every weight).
    auto meta = module->method_meta(method);
    if (!meta.ok()) {
      return fail(meta.error(), "reading metadata of " + quoted(method));
    }
    *num_inputs = meta->num_inputs();
    *num_outputs = meta->num_outputs();
    *num_backends = meta->num_backends();
    return ok();
  });
}

int32_t dlx_method_value_info(
    dlx_module* module,
    const char* method,
    int32_t is_output,
    size_t index,
    dlx_value_info* out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    Status named = check_name(module, method);
    if (named.code != DLX_OK) {
      return named;
    }
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    auto meta = module->method_meta(method);
    if (!meta.ok()) {
      return fail(meta.error(), "reading metadata of " + quoted(method));
    }
    const std::string what = std::string(is_output ? "output " : "input ") +
        std::to_string(index) + " of " + quoted(method);
    auto tag = is_output ? meta->output_tag(index) : meta->input_tag(index);
    if (!tag.ok()) {
      return fail(tag.error(), "reading the tag of " + what);
    }
    *out = dlx_value_info{};
    out->tag = static_cast<int32_t>(tag.get());
    out->dtype = -1;
    out->dynamism = -1;
    switch (tag.get()) {
      case Tag::Tensor: {
        auto info = is_output ? meta->output_tensor_meta(index) : meta->input_tensor_meta(index);
        if (!info.ok()) {
          return fail(info.error(), "reading the tensor metadata of " + what);
        }
        out->dtype = static_cast<int32_t>(info->scalar_type());
        out->ndim = info->sizes().size();
        out->sizes = info->sizes().data();
        out->nbytes = info->nbytes();
        // MethodMeta has no dynamism, and reading it from a loaded method would mean loading
        // it here: the caller reads it from the program's value table (-1 = not reported).
        break;
      }
      case Tag::Int:
        fill_scalar(out, static_cast<int32_t>(ScalarType::Long), nullptr, sizeof(int64_t));
        break;
      case Tag::Double:
        fill_scalar(out, static_cast<int32_t>(ScalarType::Double), nullptr, sizeof(double));
        break;
      case Tag::Bool:
        fill_scalar(out, static_cast<int32_t>(ScalarType::Bool), nullptr, sizeof(bool));
        break;
      default:
        break;
    }
    return ok();
  });
}

int32_t dlx_method_backend_name(
    dlx_module* module,
    const char* method,
    size_t index,
    const char** out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    Status named = check_name(module, method);
    if (named.code != DLX_OK) {
      return named;
    }
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    auto meta = module->method_meta(method);
    if (!meta.ok()) {
      return fail(meta.error(), "reading metadata of " + quoted(method));
    }
    auto name = meta->get_backend_name(index);
    if (!name.ok()) {
      return fail(name.error(), "reading backend " + std::to_string(index) + " of " + quoted(method));
    }
    *out = name.get();
    return ok();
  });
}

int32_t dlx_module_execute(
    dlx_module* module,
    const char* method,
    const dlx_tensor_in* inputs,
    size_t num_inputs,
    size_t* num_outputs,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    Status named = check_name(module, method);
    if (named.code != DLX_OK) {
      return named;
    }
    if (num_outputs == nullptr || (num_inputs > 0 && inputs == nullptr)) {
      return fail(Error::InvalidArgument, "null inputs or output pointer");
    }
    *num_outputs = 0;
    module->outputs.clear();
    module->scalars.clear();
    module->inputs.clear();
    module->input_copies.clear();
    auto meta = module->method_meta(method);
    if (!meta.ok()) {
      return fail(meta.error(), "reading metadata of " + quoted(method));
    }
    module->input_copies.resize(num_inputs);
    std::vector<EValue> values;
    values.reserve(num_inputs);
    for (size_t i = 0; i < num_inputs; ++i) {
      const dlx_tensor_in& in = inputs[i];
      if (in.data == nullptr || (in.ndim > 0 && in.sizes == nullptr)) {
        return fail(Error::InvalidArgument, "null data or sizes for input " + std::to_string(i));
      }
      std::vector<SizesType> sizes(in.ndim);
      for (size_t d = 0; d < in.ndim; ++d) {
        if (in.sizes[d] < 0 || in.sizes[d] > INT32_MAX) {
          return fail(Error::InvalidArgument, "size out of range for input " + std::to_string(i));
        }
        sizes[d] = static_cast<SizesType>(in.sizes[d]);
      }
      // The runtime only reads inputs (it copies them into planned memory when the method
      // planned them), so dropping const here is sound.
      TensorPtr tensor = executorch::extension::from_blob(
          const_cast<void*>(in.data), sizes, static_cast<ScalarType>(in.dtype));
      auto info = meta->input_tensor_meta(i);
      if (info.ok() && !info->is_memory_planned()) {
        // The method would keep pointing at the caller's buffer after this call, and outputs
        // that alias the input would outlive it: give it module-owned storage instead.
        const auto* bytes = static_cast<const uint8_t*>(in.data);
        module->input_copies[i].assign(bytes, bytes + tensor->nbytes());
        tensor = executorch::extension::from_blob(
            module->input_copies[i].data(), std::move(sizes), static_cast<ScalarType>(in.dtype));
      }
      module->inputs.push_back(std::move(tensor));
      values.emplace_back(*module->inputs.back());
    }
    // A delegate that throws (the Vulkan delegate does, e.g. on a resize it does not support)
    // leaves the Method marked as mid-execution, and every later call fails with "Inputs can not
    // be set mid execution". Unloading it makes the next call load it afresh (delegates
    // re-initialised, mutable buffers such as a KV cache emptied; the engine forgets its cache
    // record on any failed forward).
    try {
      auto result = module->execute(method, values);
      if (!result.ok()) {
        return fail(result.error(), "executing " + quoted(method));
      }
      module->outputs = std::move(result.get());
    } catch (const std::exception& e) {
      module->unload_method(method);
      return fail(Error::Internal,
          "executing " + quoted(method) + ": C++ exception: " + e.what() +
              " (the method was unloaded; the next call loads it again)");
    }
    // Sized once so the addresses handed out for scalar outputs stay put.
    module->scalars.resize(module->outputs.size());
    for (size_t i = 0; i < module->outputs.size(); ++i) {
      const EValue& value = module->outputs[i];
      if (value.isInt()) {
        module->scalars[i].i = value.toInt();
      } else if (value.isDouble()) {
        module->scalars[i].d = value.toDouble();
      } else if (value.isBool()) {
        module->scalars[i].b = value.toBool();
      }
    }
    *num_outputs = module->outputs.size();
    return ok();
  });
}

int32_t dlx_module_output(
    dlx_module* module,
    size_t index,
    dlx_value_info* out,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (module == nullptr || out == nullptr) {
      return fail(Error::InvalidArgument, "null module or output pointer");
    }
    if (index >= module->outputs.size()) {
      return fail(Error::InvalidArgument, "output " + std::to_string(index) + " out of range");
    }
    const EValue& value = module->outputs[index];
    dlx_module::Scalar& scalar = module->scalars[index];
    *out = dlx_value_info{};
    out->tag = static_cast<int32_t>(value.tag);
    out->dtype = -1;
    out->dynamism = -1;
    if (value.isTensor()) {
      const auto& tensor = value.toTensor();
      out->dtype = static_cast<int32_t>(tensor.scalar_type());
      out->ndim = static_cast<size_t>(tensor.dim());
      out->sizes = tensor.sizes().data();
      out->dynamism = static_cast<int32_t>(tensor.shape_dynamism());
      out->nbytes = tensor.nbytes();
      out->data = tensor.const_data_ptr();
    } else if (value.isInt()) {
      fill_scalar(out, static_cast<int32_t>(ScalarType::Long), &scalar.i, sizeof(int64_t));
    } else if (value.isDouble()) {
      fill_scalar(out, static_cast<int32_t>(ScalarType::Double), &scalar.d, sizeof(double));
    } else if (value.isBool()) {
      fill_scalar(out, static_cast<int32_t>(ScalarType::Bool), &scalar.b, sizeof(bool));
    }
    return ok();
  });
}

int32_t dlx_module_named_data(
    dlx_module* module,
    const char* key,
    const void** data,
    size_t* len,
    dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (module == nullptr || key == nullptr || data == nullptr || len == nullptr) {
      return fail(Error::InvalidArgument, "null module, key or output pointer");
    }
    *data = nullptr;
    *len = 0;
    const std::string name(key);
    auto cached = module->named_data.find(name);
    if (cached == module->named_data.end()) {
      auto program = module->program();
      if (!program) {
        return fail(Error::InvalidState, "program not loaded");
      }
      const std::string what = "named data '" + name + "'";
      // NotFound from either call means absent (no named data at all, or no such key): not
      // an error, the caller sees NULL.
      auto map = program->get_named_data_map();
      if (!map.ok()) {
        return map.error() == Error::NotFound ? ok()
                                              : fail(map.error(), "reading the named data map");
      }
      auto buffer = map.get()->get_data(name);
      if (!buffer.ok()) {
        return buffer.error() == Error::NotFound ? ok() : fail(buffer.error(), "loading " + what);
      }
      // data_safe, not data(): a buffer backed by an integer address would abort in data().
      auto bytes = buffer->data_safe();
      if (!bytes.ok()) {
        return fail(bytes.error(), "reading " + what);
      }
      cached = module->named_data.emplace(name, std::move(buffer.get())).first;
    }
    // The data loaders return an empty buffer (NULL data) for a zero-length entry; a present
    // entry must not read as absent, so it gets a non-NULL address with length 0.
    static const uint8_t kEmpty = 0;
    const void* bytes = cached->second.data_safe().get();
    *data = bytes != nullptr ? bytes : &kEmpty;
    *len = cached->second.size();
    return ok();
  });
}

int32_t dlx_threadpool_thread_count(size_t* out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
#ifdef ET_USE_THREADPOOL
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr) {
      return fail(Error::Internal, "ExecuTorch returned no thread pool");
    }
    *out = pool->get_thread_count();
    return ok();
#else
    return fail(Error::NotSupported, "this ExecuTorch runtime was built without its thread pool");
#endif
  });
}

int32_t dlx_threadpool_set_thread_count(uint32_t num_threads, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (num_threads == 0) {
      return fail(Error::InvalidArgument, "thread count 0 (pass at least 1)");
    }
#ifdef ET_USE_THREADPOOL
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr) {
      return fail(Error::Internal, "ExecuTorch returned no thread pool");
    }
    const size_t before = pool->get_thread_count();
    pool->_unsafe_reset_threadpool(num_threads);
    const size_t after = pool->get_thread_count();
    if (after == num_threads) {
      return ok();
    }
    // pthreadpool_create failed (the pool is now empty, and the optimized kernels abort on an
    // empty pool): put the previous size back before reporting.
    if (before > 0 && before <= UINT32_MAX) {
      pool->_unsafe_reset_threadpool(static_cast<uint32_t>(before));
    }
    return fail(
        Error::OutOfResources,
        "creating a thread pool of " + std::to_string(num_threads) + " threads (got " +
            std::to_string(after) + ")");
#else
    return fail(Error::NotSupported, "this ExecuTorch runtime was built without its thread pool");
#endif
  });
}

int32_t dlx_threadpool_run(dlx_task_fn task, void* ctx, size_t range, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (task == nullptr) {
      return fail(Error::InvalidArgument, "null task");
    }
#ifdef ET_USE_THREADPOOL
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool != nullptr && pool->get_thread_count() > 1) {
      auto call = [&](size_t i) { task(ctx, i); };
      pool->run(call, range);
      return ok();
    }
#endif
    for (size_t i = 0; i < range; ++i) {
      task(ctx, i);
    }
    return ok();
  });
}

uint32_t dlx_abi_version(void) {
  return DLX_ABI_VERSION;
}

int32_t dlx_registered_kernel_count(size_t* out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    *out = executorch::runtime::get_registered_kernels().size();
    return ok();
  });
}

int32_t dlx_registered_kernel_name(size_t index, const char** out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    auto kernels = executorch::runtime::get_registered_kernels();
    if (index >= kernels.size()) {
      return fail(
          Error::InvalidArgument,
          "kernel index " + std::to_string(index) + " past the " +
              std::to_string(kernels.size()) + " registered kernels");
    }
    *out = kernels[index].name_;
    return ok();
  });
}

int32_t dlx_registered_backend_count(size_t* out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    *out = executorch::runtime::get_num_registered_backends();
    return ok();
  });
}

int32_t dlx_registered_backend_name(size_t index, const char** out, dlx_error* err) {
  return barrier(err, [&]() -> Status {
    if (out == nullptr) {
      return fail(Error::InvalidArgument, "null output pointer");
    }
    auto name = executorch::runtime::get_backend_name(index);
    if (!name.ok()) {
      return fail(name.error(), "backend index " + std::to_string(index));
    }
    *out = *name;
    return ok();
  });
}

} // extern "C"
