// es2's N-API binding over libvirt.so.
//
// Primitive calls only: types, names and promises are given by src/libvirt/ in TypeScript, and
// nothing else in es2 loads this addon. Domains are addressed by UUID string on every call, so
// no libvirt object outlives the call that looked it up (each virDomainPtr is freed in the same
// worker that created it).
//
// Threading: every blocking libvirt call runs in a Napi::AsyncWorker on the libuv pool. libvirt
// keeps its last error per thread, so the error is copied inside Execute(), on the thread that
// made the call. Events run on one dedicated native thread (libvirt's default event loop) and are
// copied into plain structs and handed to JS through a thread-safe function.

#include <napi.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Errors

struct LvError {
  int code = VIR_ERR_INTERNAL_ERROR;
  int domain = VIR_FROM_NONE;
  int level = VIR_ERR_ERROR;
  std::string message = "unknown libvirt error";
};

// Must run on the thread that made the failing call.
LvError CaptureError() {
  LvError out;
  virErrorPtr e = virGetLastError();
  if (e != nullptr) {
    out.code = e->code;
    out.domain = e->domain;
    out.level = e->level;
    if (e->message != nullptr) out.message = e->message;
  }
  virResetLastError();
  return out;
}

LvError ClosedError() {
  LvError out;
  out.code = VIR_ERR_INVALID_CONN;
  out.message = "connection is closed";
  return out;
}

Napi::Value ErrorToJs(Napi::Env env, const LvError& err) {
  Napi::Error e = Napi::Error::New(env, err.message);
  Napi::Object o = e.Value();
  o.Set("code", Napi::Number::New(env, err.code));
  o.Set("domain", Napi::Number::New(env, err.domain));
  o.Set("level", Napi::Number::New(env, err.level));
  return o;
}

// libvirt prints every error to stderr unless a handler is installed; errors reach JS instead.
void SilentErrorHandler(void*, virErrorPtr) {}

// ---------------------------------------------------------------------------------------------
// Copies of libvirt data that outlive libvirt's buffers

struct Param {
  std::string field;
  int type = 0;
  long long i = 0;
  unsigned long long u = 0;
  double d = 0;
  std::string s;
};

std::vector<Param> CopyParams(virTypedParameterPtr params, int n) {
  std::vector<Param> out;
  out.reserve(n > 0 ? n : 0);
  for (int k = 0; k < n; k++) {
    Param p;
    p.field = params[k].field;
    p.type = params[k].type;
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: p.i = params[k].value.i; break;
      case VIR_TYPED_PARAM_UINT: p.u = params[k].value.ui; break;
      case VIR_TYPED_PARAM_LLONG: p.i = params[k].value.l; break;
      case VIR_TYPED_PARAM_ULLONG: p.u = params[k].value.ul; break;
      case VIR_TYPED_PARAM_DOUBLE: p.d = params[k].value.d; break;
      case VIR_TYPED_PARAM_BOOLEAN: p.i = params[k].value.b; break;
      case VIR_TYPED_PARAM_STRING: p.s = params[k].value.s ? params[k].value.s : ""; break;
      default: break;
    }
    out.push_back(std::move(p));
  }
  return out;
}

// 64-bit counters become BigInt so that no precision is lost; 32-bit ones are plain numbers.
Napi::Value ParamToJs(Napi::Env env, const Param& p) {
  switch (p.type) {
    case VIR_TYPED_PARAM_INT: return Napi::Number::New(env, static_cast<double>(p.i));
    case VIR_TYPED_PARAM_UINT: return Napi::Number::New(env, static_cast<double>(p.u));
    case VIR_TYPED_PARAM_LLONG: return Napi::BigInt::New(env, static_cast<int64_t>(p.i));
    case VIR_TYPED_PARAM_ULLONG: return Napi::BigInt::New(env, static_cast<uint64_t>(p.u));
    case VIR_TYPED_PARAM_DOUBLE: return Napi::Number::New(env, p.d);
    case VIR_TYPED_PARAM_BOOLEAN: return Napi::Boolean::New(env, p.i != 0);
    case VIR_TYPED_PARAM_STRING: return Napi::String::New(env, p.s);
    default: return env.Undefined();
  }
}

Napi::Object ParamsToJs(Napi::Env env, const std::vector<Param>& params) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& p : params) o.Set(p.field, ParamToJs(env, p));
  return o;
}

struct DomainRef {
  std::string name;
  std::string uuid;
  int id = -1;
};

bool ReadRef(virDomainPtr dom, DomainRef& out) {
  const char* name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (name == nullptr || virDomainGetUUIDString(dom, uuid) < 0) return false;
  out.name = name;
  out.uuid = uuid;
  out.id = static_cast<int>(virDomainGetID(dom));
  return true;
}

Napi::Object RefToJs(Napi::Env env, const DomainRef& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", r.name);
  o.Set("uuid", r.uuid);
  o.Set("id", Napi::Number::New(env, r.id == static_cast<int>(static_cast<unsigned int>(-1)) ? -1 : r.id));
  return o;
}

using CpuList = std::vector<int>;

Napi::Array CpuListToJs(Napi::Env env, const CpuList& cpus) {
  Napi::Array a = Napi::Array::New(env, cpus.size());
  for (size_t k = 0; k < cpus.size(); k++) a.Set(k, Napi::Number::New(env, cpus[k]));
  return a;
}

CpuList CpuListFromJs(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "cpus must be an array of CPU numbers");
  Napi::Array a = v.As<Napi::Array>();
  CpuList out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw Napi::TypeError::New(v.Env(), "cpus must be an array of CPU numbers");
    int cpu = e.As<Napi::Number>().Int32Value();
    if (cpu < 0 || cpu > 65535) throw Napi::RangeError::New(v.Env(), "CPU number out of range");
    out.push_back(cpu);
  }
  return out;
}

std::vector<unsigned char> CpuMap(const CpuList& cpus) {
  int maxCpu = 0;
  for (int c : cpus) maxCpu = std::max(maxCpu, c + 1);
  std::vector<unsigned char> map(VIR_CPU_MAPLEN(std::max(maxCpu, 1)), 0);
  for (int c : cpus) VIR_USE_CPU(map.data(), c);
  return map;
}

CpuList CpusFromMap(const unsigned char* map, int maplen, int maxCpus) {
  CpuList out;
  for (int c = 0; c < maxCpus && c < maplen * 8; c++)
    if (VIR_CPU_USABLE(map, maplen, 0, c)) out.push_back(c);
  return out;
}

// Width of the CPU maps to ask for. Drivers disagree on which call knows the full count (the test
// driver's CPU map covers 8 of its 16 CPUs), so the larger answer wins.
int HostCpuCount(virConnectPtr conn) {
  int n = virNodeGetCPUMap(conn, nullptr, nullptr, 0);
  if (n < 0) virResetLastError();
  virNodeInfo info;
  if (virNodeGetInfo(conn, &info) == 0) n = std::max(n, static_cast<int>(VIR_NODEINFO_MAXCPUS(info)));
  else virResetLastError();
  return n > 0 ? n : -1;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t k, const char* what) {
  if (info.Length() <= k || !info[k].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[k].As<Napi::String>().Utf8Value();
}

uint32_t UintArg(const Napi::CallbackInfo& info, size_t k, const char* what) {
  if (info.Length() <= k || info[k].IsUndefined()) return 0;
  if (!info[k].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double d = info[k].As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an unsigned 32-bit integer");
  return static_cast<uint32_t>(d);
}

// ---------------------------------------------------------------------------------------------
// Event loop: libvirt's default implementation on its own thread, registered before any
// connection is opened (keepalive and events both need it).

void StartEventLoop() {
  static std::once_flag once;
  std::call_once(once, [] {
    virEventRegisterDefaultImpl();
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          virResetLastError();
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }).detach();
  });
}

// ---------------------------------------------------------------------------------------------
// Events delivered to JS

struct Event {
  std::string type;  // lifecycle | tunable | metadata | closed
  DomainRef dom;
  int event = 0;
  int detail = 0;
  std::vector<Param> params;
  std::string nsuri;
  bool hasNsuri = false;
};

void CallJsWithEvent(Napi::Env env, Napi::Function fn, void*, Event* ev) {
  std::unique_ptr<Event> owned(ev);
  if (env == nullptr || fn.IsEmpty()) return;
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", ev->type);
  if (ev->type == "closed") {
    o.Set("reason", Napi::Number::New(env, ev->event));
  } else {
    o.Set("domain", RefToJs(env, ev->dom));
  }
  if (ev->type == "lifecycle") {
    o.Set("event", Napi::Number::New(env, ev->event));
    o.Set("detail", Napi::Number::New(env, ev->detail));
  } else if (ev->type == "tunable") {
    o.Set("params", ParamsToJs(env, ev->params));
  } else if (ev->type == "metadata") {
    o.Set("metadataType", Napi::Number::New(env, ev->event));
    o.Set("nsuri", ev->hasNsuri ? Napi::Value(Napi::String::New(env, ev->nsuri)) : env.Null());
  }
  fn.Call({o});
}

using EventTsfn = Napi::TypedThreadSafeFunction<void, Event, CallJsWithEvent>;

// Shared by the libvirt callbacks of one connection. libvirt calls the free callback once per
// registration after that callback can no longer run; the last one releases the TSFN, so no
// callback can touch a released function.
struct EventSink {
  EventTsfn tsfn;
  std::atomic<int> refs{0};
};

void SinkUnref(void* opaque) {
  auto* sink = static_cast<EventSink*>(opaque);
  if (sink->refs.fetch_sub(1) == 1) {
    sink->tsfn.Release();
    delete sink;
  }
}

void Deliver(void* opaque, Event* ev) {
  auto* sink = static_cast<EventSink*>(opaque);
  if (sink->tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
}

int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* ev = new Event();
  ev->type = "lifecycle";
  ReadRef(dom, ev->dom);
  ev->event = event;
  ev->detail = detail;
  Deliver(opaque, ev);
  return 0;
}

void OnTunable(virConnectPtr, virDomainPtr dom, virTypedParameterPtr params, int nparams, void* opaque) {
  auto* ev = new Event();
  ev->type = "tunable";
  ReadRef(dom, ev->dom);
  ev->params = CopyParams(params, nparams);
  Deliver(opaque, ev);
}

void OnMetadata(virConnectPtr, virDomainPtr dom, int type, const char* nsuri, void* opaque) {
  auto* ev = new Event();
  ev->type = "metadata";
  ReadRef(dom, ev->dom);
  ev->event = type;
  if (nsuri != nullptr) {
    ev->nsuri = nsuri;
    ev->hasNsuri = true;
  }
  Deliver(opaque, ev);
}

void OnClose(virConnectPtr, int reason, void* opaque) {
  auto* ev = new Event();
  ev->type = "closed";
  ev->event = reason;
  Deliver(opaque, ev);
}

// ---------------------------------------------------------------------------------------------
// Workers

// Frees libvirt objects without letting the free replace the error of a call that failed.
// libvirt has no public way to put an error back, so the first one is kept per thread here and
// preferred by the worker over whatever the free left behind.
thread_local bool tlHasSaved = false;
thread_local LvError tlSaved;

template <typename F>
void FreeKeepingError(F free) {
  virErrorPtr e = virGetLastError();
  if (e != nullptr && e->code != VIR_ERR_OK && !tlHasSaved) {
    tlSaved = CaptureError();
    tlHasSaved = true;
  }
  free();
}

// A connection handle that keeps the virConnect alive for as long as a worker uses it.
class ConnRef {
 public:
  explicit ConnRef(virConnectPtr c) : c_(c) {
    if (c_ != nullptr) virConnectRef(c_);
  }
  ~ConnRef() {
    if (c_ != nullptr) virConnectClose(c_);
  }
  ConnRef(const ConnRef&) = delete;
  ConnRef& operator=(const ConnRef&) = delete;
  virConnectPtr get() const { return c_; }

 private:
  virConnectPtr c_;
};

template <typename T>
class Task : public Napi::AsyncWorker {
 public:
  using Work = std::function<bool(virConnectPtr, T&)>;
  using Convert = std::function<Napi::Value(Napi::Env, T&)>;

  Task(Napi::Env env, virConnectPtr conn, Work work, Convert convert)
      : Napi::AsyncWorker(env, "es2:libvirt"),
        deferred_(Napi::Promise::Deferred::New(env)),
        conn_(conn),
        work_(std::move(work)),
        convert_(std::move(convert)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    tlHasSaved = false;
    if (!work_(conn_.get(), value_)) {
      failed_ = true;
      err_ = tlHasSaved ? tlSaved : CaptureError();
    }
    tlHasSaved = false;
    virResetLastError();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(ErrorToJs(env, err_));
      return;
    }
    try {
      deferred_.Resolve(convert_(env, value_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  ConnRef conn_;
  Work work_;
  Convert convert_;
  T value_{};
  bool failed_ = false;
  LvError err_;
};

// Runs work(domain, value) on the domain with the given UUID, freeing it afterwards.
template <typename T>
typename Task<T>::Work OnDomain(std::string uuid, std::function<bool(virDomainPtr, T&)> work) {
  return [uuid = std::move(uuid), work = std::move(work)](virConnectPtr c, T& v) {
    virDomainPtr dom = virDomainLookupByUUIDString(c, uuid.c_str());
    if (dom == nullptr) return false;
    bool ok = work(dom, v);
    FreeKeepingError([dom] { virDomainFree(dom); });
    return ok;
  };
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Connection

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "Connection",
        {
            InstanceMethod<&Connection::Open>("open"),
            InstanceMethod<&Connection::Close>("close"),
            InstanceMethod<&Connection::IsOpen>("isOpen"),
            InstanceMethod<&Connection::SetEventHandler>("setEventHandler"),
            InstanceMethod<&Connection::GetLibVersion>("getLibVersion"),
            InstanceMethod<&Connection::GetVersion>("getVersion"),
            InstanceMethod<&Connection::GetType>("getType"),
            InstanceMethod<&Connection::GetHostname>("getHostname"),
            InstanceMethod<&Connection::GetCapabilities>("getCapabilities"),
            InstanceMethod<&Connection::IsAlive>("isAlive"),
            InstanceMethod<&Connection::NodeGetInfo>("nodeGetInfo"),
            InstanceMethod<&Connection::NodeGetCPUMap>("nodeGetCPUMap"),
            InstanceMethod<&Connection::ListAllDomains>("listAllDomains"),
            InstanceMethod<&Connection::LookupByName>("lookupDomainByName"),
            InstanceMethod<&Connection::LookupByUUID>("lookupDomainByUUID"),
            InstanceMethod<&Connection::DomainGetInfo>("domainGetInfo"),
            InstanceMethod<&Connection::DomainGetXMLDesc>("domainGetXMLDesc"),
            InstanceMethod<&Connection::DomainGetState>("domainGetState"),
            InstanceMethod<&Connection::DomainDefineXML>("domainDefineXML"),
            InstanceMethod<&Connection::DomainCreate>("domainCreate"),
            InstanceMethod<&Connection::DomainDestroy>("domainDestroy"),
            InstanceMethod<&Connection::DomainUndefine>("domainUndefine"),
            InstanceMethod<&Connection::DomainPinVcpu>("domainPinVcpu"),
            InstanceMethod<&Connection::DomainGetVcpuPinInfo>("domainGetVcpuPinInfo"),
            InstanceMethod<&Connection::DomainPinEmulator>("domainPinEmulator"),
            InstanceMethod<&Connection::DomainGetEmulatorPinInfo>("domainGetEmulatorPinInfo"),
            InstanceMethod<&Connection::DomainAddIOThread>("domainAddIOThread"),
            InstanceMethod<&Connection::DomainDelIOThread>("domainDelIOThread"),
            InstanceMethod<&Connection::DomainPinIOThread>("domainPinIOThread"),
            InstanceMethod<&Connection::DomainGetIOThreadInfo>("domainGetIOThreadInfo"),
            InstanceMethod<&Connection::DomainSetIOThreadParams>("domainSetIOThreadParams"),
            InstanceMethod<&Connection::DomainSetMetadata>("domainSetMetadata"),
            InstanceMethod<&Connection::DomainGetMetadata>("domainGetMetadata"),
            InstanceMethod<&Connection::GetAllDomainStats>("getAllDomainStats"),
            InstanceMethod<&Connection::DomainListGetStats>("domainListGetStats"),
        });
  }

  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {}

  ~Connection() override {
    // A connection dropped by JS without close(): give back our reference. Workers in flight
    // hold their own, and event callbacks are deregistered so the sink can be freed.
    if (conn_ != nullptr) {
      DeregisterEvents(conn_);
      virConnectClose(conn_);
      conn_ = nullptr;
    }
  }

 private:
  virConnectPtr conn_ = nullptr;
  EventSink* sink_ = nullptr;
  std::vector<int> callbackIds_;
  bool closeCallback_ = false;

  Napi::Value Rejected(Napi::Env env, const LvError& err) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(ErrorToJs(env, err));
    return d.Promise();
  }

  template <typename T>
  Napi::Value Run(const Napi::CallbackInfo& info, typename Task<T>::Work work,
                  typename Task<T>::Convert convert) {
    if (conn_ == nullptr) return Rejected(info.Env(), ClosedError());
    auto* task = new Task<T>(info.Env(), conn_, std::move(work), std::move(convert));
    Napi::Promise p = task->Promise();
    task->Queue();
    return p;
  }

  template <typename T>
  Napi::Value RunOnDomain(const Napi::CallbackInfo& info, std::function<bool(virDomainPtr, T&)> work,
                          typename Task<T>::Convert convert) {
    std::string uuid = StringArg(info, 0, "uuid");
    return Run<T>(info, OnDomain<T>(std::move(uuid), std::move(work)), std::move(convert));
  }

  static Napi::Value Undefined(Napi::Env env, int&) { return env.Undefined(); }

  // open(uri, readOnly) -> Promise<void>
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string uri = StringArg(info, 0, "uri");
    bool readOnly = info.Length() > 1 && info[1].ToBoolean();
    if (conn_ != nullptr) throw Napi::Error::New(env, "connection is already open");
    auto d = Napi::Promise::Deferred::New(env);
    // The open itself needs no connection; a small dedicated worker hands the pointer back.
    class OpenWorker : public Napi::AsyncWorker {
     public:
      OpenWorker(Napi::Env env, Connection* self, Napi::Promise::Deferred d, std::string uri, bool ro)
          : Napi::AsyncWorker(env, "es2:libvirt-open"), self_(self), d_(d), uri_(std::move(uri)), ro_(ro) {
        self_->Ref();
      }
      ~OpenWorker() override { self_->Unref(); }
      void Execute() override {
        conn_ = ro_ ? virConnectOpenReadOnly(uri_.c_str()) : virConnectOpen(uri_.c_str());
        if (conn_ == nullptr) {
          err_ = CaptureError();
          return;
        }
        // Remote connections only; local drivers answer "not supported", which is fine.
        if (virConnectSetKeepAlive(conn_, 5, 3) < 0) virResetLastError();
      }
      void OnOK() override {
        Napi::HandleScope scope(Env());
        if (conn_ == nullptr) {
          d_.Reject(ErrorToJs(Env(), err_));
          return;
        }
        if (self_->conn_ != nullptr) {  // opened twice concurrently: keep the first
          virConnectClose(conn_);
          d_.Reject(Napi::Error::New(Env(), "connection is already open").Value());
          return;
        }
        self_->conn_ = conn_;
        d_.Resolve(Env().Undefined());
      }

     private:
      Connection* self_;
      Napi::Promise::Deferred d_;
      std::string uri_;
      bool ro_;
      virConnectPtr conn_ = nullptr;
      LvError err_;
    };
    (new OpenWorker(env, this, d, uri, readOnly))->Queue();
    return d.Promise();
  }

  void DeregisterEvents(virConnectPtr c) {
    for (int id : callbackIds_)
      if (virConnectDomainEventDeregisterAny(c, id) < 0) virResetLastError();
    callbackIds_.clear();
    if (closeCallback_) {
      if (virConnectUnregisterCloseCallback(c, OnClose) < 0) virResetLastError();
      closeCallback_ = false;
    }
    if (sink_ != nullptr) {
      // Drop the reference the connection itself held (see SetEventHandler).
      SinkUnref(sink_);
      sink_ = nullptr;
    }
  }

  // close() -> Promise<void>. Workers still in flight hold their own reference, so libvirt
  // frees the connection when the last of them finishes.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto d = Napi::Promise::Deferred::New(env);
    if (conn_ != nullptr) {
      DeregisterEvents(conn_);
      virConnectPtr c = conn_;
      conn_ = nullptr;
      if (virConnectClose(c) < 0) virResetLastError();
    }
    d.Resolve(env.Undefined());
    return d.Promise();
  }

  Napi::Value IsOpen(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), conn_ != nullptr); }

  // setEventHandler(fn): registers LIFECYCLE, TUNABLE and METADATA_CHANGE for all domains and the
  // close callback, delivering plain objects to fn on the JS thread.
  Napi::Value SetEventHandler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (conn_ == nullptr) throw Napi::Error::New(env, "connection is closed");
    if (sink_ != nullptr) throw Napi::Error::New(env, "event handler already set");
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "handler must be a function");
    auto* sink = new EventSink();
    sink->tsfn = EventTsfn::New(env, info[0].As<Napi::Function>(), "es2:libvirt-events", 0, 1);
    // The handler must not keep the process alive on its own.
    sink->tsfn.Unref(env);
    sink->refs = 1;  // held by this connection until DeregisterEvents
    sink_ = sink;

    struct Reg {
      int id;
      virConnectDomainEventGenericCallback cb;
    };
    const Reg regs[] = {
        {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle)},
        {VIR_DOMAIN_EVENT_ID_TUNABLE, VIR_DOMAIN_EVENT_CALLBACK(OnTunable)},
        {VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(OnMetadata)},
    };
    Napi::Array unsupported = Napi::Array::New(env);
    for (const auto& r : regs) {
      sink->refs++;
      int id = virConnectDomainEventRegisterAny(conn_, nullptr, r.id, r.cb, sink, SinkUnref);
      if (id < 0) {
        sink->refs--;
        LvError err = CaptureError();
        unsupported.Set(unsupported.Length(), Napi::String::New(env, err.message));
      } else {
        callbackIds_.push_back(id);
      }
    }
    sink->refs++;
    if (virConnectRegisterCloseCallback(conn_, OnClose, sink, SinkUnref) < 0) {
      sink->refs--;
      virResetLastError();
    } else {
      closeCallback_ = true;
    }
    return unsupported;
  }

  Napi::Value GetLibVersion(const Napi::CallbackInfo& info) {
    return Run<unsigned long>(
        info, [](virConnectPtr c, unsigned long& v) { return virConnectGetLibVersion(c, &v) == 0; },
        [](Napi::Env env, unsigned long& v) { return Napi::Number::New(env, static_cast<double>(v)); });
  }

  Napi::Value GetVersion(const Napi::CallbackInfo& info) {
    return Run<unsigned long>(
        info, [](virConnectPtr c, unsigned long& v) { return virConnectGetVersion(c, &v) == 0; },
        [](Napi::Env env, unsigned long& v) { return Napi::Number::New(env, static_cast<double>(v)); });
  }

  Napi::Value GetType(const Napi::CallbackInfo& info) {
    return Run<std::string>(
        info,
        [](virConnectPtr c, std::string& v) {
          const char* t = virConnectGetType(c);
          if (t == nullptr) return false;
          v = t;
          return true;
        },
        [](Napi::Env env, std::string& v) { return Napi::String::New(env, v); });
  }

  Napi::Value GetHostname(const Napi::CallbackInfo& info) {
    return Run<std::string>(
        info,
        [](virConnectPtr c, std::string& v) {
          char* h = virConnectGetHostname(c);
          if (h == nullptr) return false;
          v = h;
          free(h);
          return true;
        },
        [](Napi::Env env, std::string& v) { return Napi::String::New(env, v); });
  }

  Napi::Value GetCapabilities(const Napi::CallbackInfo& info) {
    return Run<std::string>(
        info,
        [](virConnectPtr c, std::string& v) {
          char* x = virConnectGetCapabilities(c);
          if (x == nullptr) return false;
          v = x;
          free(x);
          return true;
        },
        [](Napi::Env env, std::string& v) { return Napi::String::New(env, v); });
  }

  Napi::Value IsAlive(const Napi::CallbackInfo& info) {
    return Run<int>(
        info,
        [](virConnectPtr c, int& v) {
          v = virConnectIsAlive(c);
          return v >= 0;
        },
        [](Napi::Env env, int& v) { return Napi::Boolean::New(env, v == 1); });
  }

  Napi::Value NodeGetInfo(const Napi::CallbackInfo& info) {
    return Run<virNodeInfo>(
        info, [](virConnectPtr c, virNodeInfo& v) { return virNodeGetInfo(c, &v) == 0; },
        [](Napi::Env env, virNodeInfo& v) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("model", std::string(v.model));
          o.Set("memoryKiB", Napi::Number::New(env, static_cast<double>(v.memory)));
          o.Set("cpus", Napi::Number::New(env, v.cpus));
          o.Set("mhz", Napi::Number::New(env, v.mhz));
          o.Set("nodes", Napi::Number::New(env, v.nodes));
          o.Set("sockets", Napi::Number::New(env, v.sockets));
          o.Set("cores", Napi::Number::New(env, v.cores));
          o.Set("threads", Napi::Number::New(env, v.threads));
          return o;
        });
  }

  struct CpuMapResult {
    int total = 0;
    CpuList online;
  };

  Napi::Value NodeGetCPUMap(const Napi::CallbackInfo& info) {
    return Run<CpuMapResult>(
        info,
        [](virConnectPtr c, CpuMapResult& v) {
          unsigned char* map = nullptr;
          unsigned int online = 0;
          int n = virNodeGetCPUMap(c, &map, &online, 0);
          if (n < 0) return false;
          v.total = n;
          v.online = CpusFromMap(map, VIR_CPU_MAPLEN(n), n);
          free(map);
          return true;
        },
        [](Napi::Env env, CpuMapResult& v) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("total", Napi::Number::New(env, v.total));
          o.Set("online", CpuListToJs(env, v.online));
          return o;
        });
  }

  Napi::Value ListAllDomains(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 0, "flags");
    return Run<std::vector<DomainRef>>(
        info,
        [flags](virConnectPtr c, std::vector<DomainRef>& v) {
          virDomainPtr* doms = nullptr;
          int n = virConnectListAllDomains(c, &doms, flags);
          if (n < 0) return false;
          for (int k = 0; k < n; k++) {
            DomainRef r;
            if (ReadRef(doms[k], r)) v.push_back(std::move(r));
            virDomainFree(doms[k]);
          }
          free(doms);
          return true;
        },
        [](Napi::Env env, std::vector<DomainRef>& v) {
          Napi::Array a = Napi::Array::New(env, v.size());
          for (size_t k = 0; k < v.size(); k++) a.Set(k, RefToJs(env, v[k]));
          return a;
        });
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info, bool byName) {
    std::string key = StringArg(info, 0, byName ? "name" : "uuid");
    return Run<DomainRef>(
        info,
        [key, byName](virConnectPtr c, DomainRef& v) {
          virDomainPtr d = byName ? virDomainLookupByName(c, key.c_str()) : virDomainLookupByUUIDString(c, key.c_str());
          if (d == nullptr) return false;
          bool ok = ReadRef(d, v);
          virDomainFree(d);
          return ok;
        },
        [](Napi::Env env, DomainRef& v) { return RefToJs(env, v); });
  }
  Napi::Value LookupByName(const Napi::CallbackInfo& info) { return Lookup(info, true); }
  Napi::Value LookupByUUID(const Napi::CallbackInfo& info) { return Lookup(info, false); }

  struct DomInfo {
    virDomainInfo info{};
    int persistent = 0;
    int active = 0;
    DomainRef ref;
  };

  Napi::Value DomainGetInfo(const Napi::CallbackInfo& info) {
    return RunOnDomain<DomInfo>(
        info,
        [](virDomainPtr d, DomInfo& v) {
          if (virDomainGetInfo(d, &v.info) < 0) return false;
          if ((v.active = virDomainIsActive(d)) < 0) return false;
          if ((v.persistent = virDomainIsPersistent(d)) < 0) return false;
          return ReadRef(d, v.ref);
        },
        [](Napi::Env env, DomInfo& v) {
          Napi::Object o = RefToJs(env, v.ref);
          o.Set("state", Napi::Number::New(env, v.info.state));
          o.Set("maxMemKiB", Napi::Number::New(env, static_cast<double>(v.info.maxMem)));
          o.Set("memoryKiB", Napi::Number::New(env, static_cast<double>(v.info.memory)));
          o.Set("vcpus", Napi::Number::New(env, v.info.nrVirtCpu));
          o.Set("cpuTimeNs", Napi::BigInt::New(env, static_cast<uint64_t>(v.info.cpuTime)));
          o.Set("active", Napi::Boolean::New(env, v.active == 1));
          o.Set("persistent", Napi::Boolean::New(env, v.persistent == 1));
          return o;
        });
  }

  Napi::Value DomainGetState(const Napi::CallbackInfo& info) {
    return RunOnDomain<std::pair<int, int>>(
        info, [](virDomainPtr d, std::pair<int, int>& v) { return virDomainGetState(d, &v.first, &v.second, 0) == 0; },
        [](Napi::Env env, std::pair<int, int>& v) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("state", Napi::Number::New(env, v.first));
          o.Set("reason", Napi::Number::New(env, v.second));
          return o;
        });
  }

  Napi::Value DomainGetXMLDesc(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 1, "flags");
    return RunOnDomain<std::string>(
        info,
        [flags](virDomainPtr d, std::string& v) {
          char* x = virDomainGetXMLDesc(d, flags);
          if (x == nullptr) return false;
          v = x;
          free(x);
          return true;
        },
        [](Napi::Env env, std::string& v) { return Napi::String::New(env, v); });
  }

  Napi::Value DomainDefineXML(const Napi::CallbackInfo& info) {
    std::string xml = StringArg(info, 0, "xml");
    return Run<DomainRef>(
        info,
        [xml](virConnectPtr c, DomainRef& v) {
          virDomainPtr d = virDomainDefineXML(c, xml.c_str());
          if (d == nullptr) return false;
          bool ok = ReadRef(d, v);
          virDomainFree(d);
          return ok;
        },
        [](Napi::Env env, DomainRef& v) { return RefToJs(env, v); });
  }

  Napi::Value DomainCreate(const Napi::CallbackInfo& info) {
    return RunOnDomain<int>(info, [](virDomainPtr d, int&) { return virDomainCreate(d) == 0; }, Undefined);
  }

  Napi::Value DomainDestroy(const Napi::CallbackInfo& info) {
    return RunOnDomain<int>(info, [](virDomainPtr d, int&) { return virDomainDestroy(d) == 0; }, Undefined);
  }

  Napi::Value DomainUndefine(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 1, "flags");
    return RunOnDomain<int>(
        info, [flags](virDomainPtr d, int&) { return virDomainUndefineFlags(d, flags) == 0; }, Undefined);
  }

  // domainPinVcpu(uuid, vcpu, cpus[], flags)
  Napi::Value DomainPinVcpu(const Napi::CallbackInfo& info) {
    uint32_t vcpu = UintArg(info, 1, "vcpu");
    auto map = CpuMap(CpuListFromJs(info[2]));
    uint32_t flags = UintArg(info, 3, "flags");
    return RunOnDomain<int>(
        info,
        [vcpu, map, flags](virDomainPtr d, int&) {
          return virDomainPinVcpuFlags(d, vcpu, const_cast<unsigned char*>(map.data()), static_cast<int>(map.size()),
                                       flags) == 0;
        },
        Undefined);
  }

  // domainGetVcpuPinInfo(uuid, flags) -> number[][] (one CPU list per vCPU)
  Napi::Value DomainGetVcpuPinInfo(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 1, "flags");
    return RunOnDomain<std::vector<CpuList>>(
        info,
        [flags](virDomainPtr d, std::vector<CpuList>& v) {
          int cpus = HostCpuCount(virDomainGetConnect(d));
          if (cpus < 0) return false;
          int vcpus = virDomainGetVcpusFlags(d, (flags & VIR_DOMAIN_AFFECT_CONFIG) ? VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_VCPU_MAXIMUM
                                                                                   : VIR_DOMAIN_VCPU_MAXIMUM);
          if (vcpus < 0) {
            virDomainInfo di;
            virResetLastError();
            if (virDomainGetInfo(d, &di) < 0) return false;
            vcpus = di.nrVirtCpu;
          }
          int maplen = VIR_CPU_MAPLEN(cpus);
          std::vector<unsigned char> maps(static_cast<size_t>(maplen) * vcpus, 0);
          int n = virDomainGetVcpuPinInfo(d, vcpus, maps.data(), maplen, flags);
          if (n < 0) return false;
          for (int k = 0; k < n; k++) v.push_back(CpusFromMap(maps.data() + k * maplen, maplen, cpus));
          return true;
        },
        [](Napi::Env env, std::vector<CpuList>& v) {
          Napi::Array a = Napi::Array::New(env, v.size());
          for (size_t k = 0; k < v.size(); k++) a.Set(k, CpuListToJs(env, v[k]));
          return a;
        });
  }

  Napi::Value DomainPinEmulator(const Napi::CallbackInfo& info) {
    auto map = CpuMap(CpuListFromJs(info[1]));
    uint32_t flags = UintArg(info, 2, "flags");
    return RunOnDomain<int>(
        info,
        [map, flags](virDomainPtr d, int&) {
          return virDomainPinEmulator(d, const_cast<unsigned char*>(map.data()), static_cast<int>(map.size()), flags) == 0;
        },
        Undefined);
  }

  Napi::Value DomainGetEmulatorPinInfo(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 1, "flags");
    return RunOnDomain<CpuList>(
        info,
        [flags](virDomainPtr d, CpuList& v) {
          int cpus = HostCpuCount(virDomainGetConnect(d));
          if (cpus < 0) return false;
          std::vector<unsigned char> map(VIR_CPU_MAPLEN(cpus), 0);
          if (virDomainGetEmulatorPinInfo(d, map.data(), static_cast<int>(map.size()), flags) < 0) return false;
          v = CpusFromMap(map.data(), static_cast<int>(map.size()), cpus);
          return true;
        },
        [](Napi::Env env, CpuList& v) { return CpuListToJs(env, v); });
  }

  Napi::Value DomainAddIOThread(const Napi::CallbackInfo& info) {
    uint32_t id = UintArg(info, 1, "iothread id");
    uint32_t flags = UintArg(info, 2, "flags");
    return RunOnDomain<int>(
        info, [id, flags](virDomainPtr d, int&) { return virDomainAddIOThread(d, id, flags) == 0; }, Undefined);
  }

  Napi::Value DomainDelIOThread(const Napi::CallbackInfo& info) {
    uint32_t id = UintArg(info, 1, "iothread id");
    uint32_t flags = UintArg(info, 2, "flags");
    return RunOnDomain<int>(
        info, [id, flags](virDomainPtr d, int&) { return virDomainDelIOThread(d, id, flags) == 0; }, Undefined);
  }

  Napi::Value DomainPinIOThread(const Napi::CallbackInfo& info) {
    uint32_t id = UintArg(info, 1, "iothread id");
    auto map = CpuMap(CpuListFromJs(info[2]));
    uint32_t flags = UintArg(info, 3, "flags");
    return RunOnDomain<int>(
        info,
        [id, map, flags](virDomainPtr d, int&) {
          return virDomainPinIOThread(d, id, const_cast<unsigned char*>(map.data()), static_cast<int>(map.size()),
                                      flags) == 0;
        },
        Undefined);
  }

  struct IOThread {
    unsigned int id;
    CpuList cpus;
  };

  Napi::Value DomainGetIOThreadInfo(const Napi::CallbackInfo& info) {
    uint32_t flags = UintArg(info, 1, "flags");
    return RunOnDomain<std::vector<IOThread>>(
        info,
        [flags](virDomainPtr d, std::vector<IOThread>& v) {
          virDomainIOThreadInfoPtr* list = nullptr;
          int n = virDomainGetIOThreadInfo(d, &list, flags);
          if (n < 0) return false;
          for (int k = 0; k < n; k++) {
            v.push_back({list[k]->iothread_id, CpusFromMap(list[k]->cpumap, list[k]->cpumaplen, list[k]->cpumaplen * 8)});
            virDomainIOThreadInfoFree(list[k]);
          }
          free(list);
          return true;
        },
        [](Napi::Env env, std::vector<IOThread>& v) {
          Napi::Array a = Napi::Array::New(env, v.size());
          for (size_t k = 0; k < v.size(); k++) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("id", Napi::Number::New(env, v[k].id));
            o.Set("cpus", CpuListToJs(env, v[k].cpus));
            a.Set(k, o);
          }
          return a;
        });
  }

  // domainSetIOThreadParams(uuid, id, { poll_max_ns?: bigint|number, poll_grow?: number,
  // poll_shrink?: number }, flags). poll_max_ns is ULLONG in libvirt; grow/shrink are UINT.
  Napi::Value DomainSetIOThreadParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = UintArg(info, 1, "iothread id");
    if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "params must be an object");
    Napi::Object p = info[2].As<Napi::Object>();
    uint32_t flags = UintArg(info, 3, "flags");
    struct Set {
      bool hasMax = false, hasGrow = false, hasShrink = false;
      unsigned long long max = 0;
      unsigned int grow = 0, shrink = 0;
    } s;
    auto uintField = [&](const char* name, unsigned int& out) {
      Napi::Value v = p.Get(name);
      if (v.IsUndefined()) return false;
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
      double d = v.As<Napi::Number>().DoubleValue();
      if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
        throw Napi::RangeError::New(env, std::string(name) + " must be an unsigned 32-bit integer");
      out = static_cast<unsigned int>(d);
      return true;
    };
    Napi::Value max = p.Get(VIR_DOMAIN_IOTHREAD_POLL_MAX_NS);
    if (max.IsBigInt()) {
      bool lossless = false;
      s.max = max.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) throw Napi::RangeError::New(env, "poll_max_ns must fit an unsigned 64-bit integer");
      s.hasMax = true;
    } else if (max.IsNumber()) {
      double d = max.As<Napi::Number>().DoubleValue();
      if (d < 0 || d > 9007199254740991.0 || d != static_cast<double>(static_cast<unsigned long long>(d)))
        throw Napi::RangeError::New(env, "poll_max_ns must be a non-negative integer");
      s.max = static_cast<unsigned long long>(d);
      s.hasMax = true;
    } else if (!max.IsUndefined()) {
      throw Napi::TypeError::New(env, "poll_max_ns must be a number or a bigint");
    }
    s.hasGrow = uintField(VIR_DOMAIN_IOTHREAD_POLL_GROW, s.grow);
    s.hasShrink = uintField(VIR_DOMAIN_IOTHREAD_POLL_SHRINK, s.shrink);
    return RunOnDomain<int>(
        info,
        [id, s, flags](virDomainPtr d, int&) {
          virTypedParameterPtr params = nullptr;
          int n = 0, max = 0;
          bool ok = true;
          if (s.hasMax) ok = ok && virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_IOTHREAD_POLL_MAX_NS, s.max) == 0;
          if (s.hasGrow) ok = ok && virTypedParamsAddUInt(&params, &n, &max, VIR_DOMAIN_IOTHREAD_POLL_GROW, s.grow) == 0;
          if (s.hasShrink) ok = ok && virTypedParamsAddUInt(&params, &n, &max, VIR_DOMAIN_IOTHREAD_POLL_SHRINK, s.shrink) == 0;
          ok = ok && virDomainSetIOThreadParams(d, id, params, n, flags) == 0;
          virTypedParamsFree(params, n);
          return ok;
        },
        Undefined);
  }

  // domainSetMetadata(uuid, type, metadata|null, key|null, uri|null, flags)
  Napi::Value DomainSetMetadata(const Napi::CallbackInfo& info) {
    uint32_t type = UintArg(info, 1, "type");
    auto optString = [&](size_t k) -> std::pair<bool, std::string> {
      if (info.Length() <= k || info[k].IsNull() || info[k].IsUndefined()) return {false, ""};
      if (!info[k].IsString()) throw Napi::TypeError::New(info.Env(), "metadata arguments must be strings or null");
      return {true, info[k].As<Napi::String>().Utf8Value()};
    };
    auto meta = optString(2), key = optString(3), uri = optString(4);
    uint32_t flags = UintArg(info, 5, "flags");
    return RunOnDomain<int>(
        info,
        [type, meta, key, uri, flags](virDomainPtr d, int&) {
          return virDomainSetMetadata(d, static_cast<int>(type), meta.first ? meta.second.c_str() : nullptr,
                                      key.first ? key.second.c_str() : nullptr, uri.first ? uri.second.c_str() : nullptr,
                                      flags) == 0;
        },
        Undefined);
  }

  // domainGetMetadata(uuid, type, uri|null, flags) -> string (rejects with NO_DOMAIN_METADATA)
  Napi::Value DomainGetMetadata(const Napi::CallbackInfo& info) {
    uint32_t type = UintArg(info, 1, "type");
    bool hasUri = info.Length() > 2 && info[2].IsString();
    std::string uri = hasUri ? info[2].As<Napi::String>().Utf8Value() : "";
    uint32_t flags = UintArg(info, 3, "flags");
    return RunOnDomain<std::string>(
        info,
        [type, hasUri, uri, flags](virDomainPtr d, std::string& v) {
          char* m = virDomainGetMetadata(d, static_cast<int>(type), hasUri ? uri.c_str() : nullptr, flags);
          if (m == nullptr) return false;
          v = m;
          free(m);
          return true;
        },
        [](Napi::Env env, std::string& v) { return Napi::String::New(env, v); });
  }

  struct StatsRecord {
    DomainRef ref;
    std::vector<Param> params;
  };

  static Napi::Value StatsToJs(Napi::Env env, std::vector<StatsRecord>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t k = 0; k < v.size(); k++) {
      Napi::Object o = RefToJs(env, v[k].ref);
      o.Set("stats", ParamsToJs(env, v[k].params));
      a.Set(k, o);
    }
    return a;
  }

  static bool CopyStats(virDomainStatsRecordPtr* records, int n, std::vector<StatsRecord>& v) {
    v.reserve(n);
    for (int k = 0; k < n; k++) {
      StatsRecord r;
      ReadRef(records[k]->dom, r.ref);
      r.params = CopyParams(records[k]->params, records[k]->nparams);
      v.push_back(std::move(r));
    }
    virDomainStatsRecordListFree(records);
    return true;
  }

  // getAllDomainStats(stats, flags) -> [{ name, uuid, id, stats: { key: value } }]
  Napi::Value GetAllDomainStats(const Napi::CallbackInfo& info) {
    uint32_t stats = UintArg(info, 0, "stats");
    uint32_t flags = UintArg(info, 1, "flags");
    return Run<std::vector<StatsRecord>>(
        info,
        [stats, flags](virConnectPtr c, std::vector<StatsRecord>& v) {
          virDomainStatsRecordPtr* records = nullptr;
          int n = virConnectGetAllDomainStats(c, stats, &records, flags);
          if (n < 0) return false;
          return CopyStats(records, n, v);
        },
        StatsToJs);
  }

  // domainListGetStats(uuids[], stats, flags): the per-domain form exporters use.
  Napi::Value DomainListGetStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "uuids must be an array");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<std::string> uuids;
    for (uint32_t k = 0; k < arr.Length(); k++) {
      Napi::Value e = arr.Get(k);
      if (!e.IsString()) throw Napi::TypeError::New(env, "uuids must be strings");
      uuids.push_back(e.As<Napi::String>().Utf8Value());
    }
    uint32_t stats = UintArg(info, 1, "stats");
    uint32_t flags = UintArg(info, 2, "flags");
    return Run<std::vector<StatsRecord>>(
        info,
        [uuids, stats, flags](virConnectPtr c, std::vector<StatsRecord>& v) {
          std::vector<virDomainPtr> doms;
          bool ok = true;
          for (const auto& u : uuids) {
            virDomainPtr d = virDomainLookupByUUIDString(c, u.c_str());
            if (d == nullptr) {
              ok = false;
              break;
            }
            doms.push_back(d);
          }
          if (ok) {
            doms.push_back(nullptr);
            virDomainStatsRecordPtr* records = nullptr;
            int n = virDomainListGetStats(doms.data(), stats, &records, flags);
            doms.pop_back();
            if (n < 0) ok = false;
            else CopyStats(records, n, v);
          }
          FreeKeepingError([&doms] {
            for (auto d : doms) virDomainFree(d);
          });
          return ok;
        },
        StatsToJs);
  }
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, SilentErrorHandler);
  });
  StartEventLoop();
  exports.Set("Connection", Connection::Init(env));
  exports.Set("version", Napi::Number::New(env, LIBVIR_VERSION_NUMBER));
  return exports;
}

NODE_API_MODULE(es2_libvirt, InitModule)
