// Node-API glue over MPI for src/parallel/mpi-group.ts: one process is one rank. The collectives are started
// non-blocking and waited for here, on the calling (JS main) thread, with a deadline, so that a stuck peer is an
// error instead of a hang. Buffers are the callers' typed arrays, read and written in place.
#include <mpi.h>
#include <napi.h>

#include <dlfcn.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::vector<MPI_Comm> comms;  // comms[0] is MPI_COMM_WORLD; split() appends
constexpr int HEADER_TAG = 7101;
constexpr int P2P_TAG = 7102;

[[noreturn]] void fail(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, "[mpi] " + msg); }

void check(Napi::Env env, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail(env, std::string(what) + ": " + std::string(text, len));
}

MPI_Comm comm_arg(const Napi::CallbackInfo& info, size_t i) {
  const uint32_t c = info[i].As<Napi::Number>().Uint32Value();
  if (c >= comms.size()) fail(info.Env(), "unknown communicator " + std::to_string(c));
  return comms[c];
}

struct Bytes {
  void* data;
  size_t bytes;
};

Bytes bytes_arg(const Napi::CallbackInfo& info, const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string("[mpi] ") + name + " must be a typed array");
  auto a = v.As<Napi::TypedArray>();
  auto buf = a.ArrayBuffer();
  return {static_cast<uint8_t*>(buf.Data()) + a.ByteOffset(), a.ByteLength()};
}

int count_of(Napi::Env env, size_t bytes) {
  if (bytes > size_t(INT_MAX)) fail(env, "a message over 2 GiB (" + std::to_string(bytes) + " bytes)");
  return int(bytes);
}

// Between two polls of a wait that has lasted `waited` seconds: yield the core for the first 10 ms (a transfer in
// flight progresses only when this rank polls, fragment by fragment, so sleeping there cut 1 MiB exchanges to 0.05
// GB/s), then sleep 20 us, and 1 ms past 0.2 s, so that oversubscribed ranks leave the cores to the ones with work.
void back_off(double waited) {
  if (waited < 0.01) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(waited < 0.2 ? 20 : 1000));
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Waits for `req`, polling (MPI progresses in MPI_Test) and backing off. timeoutS <= 0 waits forever; false on
// timeout.
bool wait_for(MPI_Request* req, double timeoutS) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    const double waited = seconds_since(start);
    if (timeoutS > 0 && waited > timeoutS) return false;
    back_off(waited);
  }
}

[[noreturn]] void timed_out(Napi::Env env, double timeoutS, const char* what) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", timeoutS);
  fail(env, std::string(what) + " did not complete within " + secs +
                " s (MOEKIT_MPI_TIMEOUT): a rank is stuck, gone, or calling another collective");
}

void wait_or_throw(Napi::Env env, MPI_Request* req, double timeoutS, const char* what) {
  if (!wait_for(req, timeoutS)) timed_out(env, timeoutS, what);
}

// init() -> [rank, size]. Loads libmpi with global symbols first: Open MPI's plugins resolve symbols from it,
// and Node loads addons (and so their libmpi) with local ones.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    Dl_info dl;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &dl) != 0 && dl.dli_fname != nullptr) {
      dlopen(dl.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    int provided = 0;
    check(env, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    comms.assign(1, MPI_COMM_WORLD);
  }
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, rank);
  out.Set(1u, size);
  return out;
}

// version() -> the MPI library's version string.
Napi::Value Version(const Napi::CallbackInfo& info) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  return Napi::String::New(info.Env(), std::string(text, len));
}

// split(comm, color, key) -> a new communicator id (MPI_Comm_split).
Napi::Value Split(const Napi::CallbackInfo& info) {
  MPI_Comm parent = comm_arg(info, 0);
  MPI_Comm c;
  check(info.Env(), MPI_Comm_split(parent, info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(), &c),
        "MPI_Comm_split");
  MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
  comms.push_back(c);
  return Napi::Number::New(info.Env(), double(comms.size() - 1));
}

// headers(comm, send, recv, timeoutS): a fixed-size block to and from every rank (send.byteLength / size bytes
// each), by point-to-point messages, so that a timeout can name the ranks whose block has not come.
Napi::Value Headers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm c = comm_arg(info, 0);
  int size = 0, rank = 0;
  MPI_Comm_size(c, &size);
  MPI_Comm_rank(c, &rank);
  Bytes s = bytes_arg(info, info[1], "send"), r = bytes_arg(info, info[2], "recv");
  if (s.bytes != r.bytes || s.bytes % size != 0) fail(env, "headers: send and recv must be equal, size-divisible lengths");
  const size_t blk = s.bytes / size;
  const int n = count_of(env, blk);
  std::vector<MPI_Request> recvs(size, MPI_REQUEST_NULL), sends(size, MPI_REQUEST_NULL);
  std::memcpy(static_cast<uint8_t*>(r.data) + rank * blk, static_cast<uint8_t*>(s.data) + rank * blk, blk);
  for (int j = 0; j < size; j++) {
    if (j == rank) continue;
    check(env, MPI_Irecv(static_cast<uint8_t*>(r.data) + j * blk, n, MPI_BYTE, j, HEADER_TAG, c, &recvs[j]), "MPI_Irecv");
    check(env, MPI_Isend(static_cast<uint8_t*>(s.data) + j * blk, n, MPI_BYTE, j, HEADER_TAG, c, &sends[j]), "MPI_Isend");
  }
  const double timeoutS = info[3].As<Napi::Number>().DoubleValue();
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    MPI_Testall(size, recvs.data(), &done, MPI_STATUSES_IGNORE);
    if (done) break;
    const double waited = seconds_since(start);
    if (timeoutS > 0 && waited > timeoutS) {
      std::string missing;
      for (int j = 0; j < size; j++) {
        int got = 1;
        if (recvs[j] != MPI_REQUEST_NULL) MPI_Test(&recvs[j], &got, MPI_STATUS_IGNORE);
        if (!got) missing += (missing.empty() ? "" : ", ") + std::to_string(j);
      }
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", timeoutS);
      fail(env, "no word from rank " + missing + " within " + secs +
                    " s (MOEKIT_MPI_TIMEOUT): it is stuck, gone, or not calling this collective");
    }
    back_off(waited);
  }
  MPI_Waitall(size, sends.data(), MPI_STATUSES_IGNORE);
  return env.Undefined();
}

// allgatherv(comm, send, recv, counts, displs, timeoutS): byte counts and displacements into recv (Int32Array).
Napi::Value Allgatherv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm c = comm_arg(info, 0);
  Bytes s = bytes_arg(info, info[1], "send"), r = bytes_arg(info, info[2], "recv");
  auto counts = info[3].As<Napi::Int32Array>(), displs = info[4].As<Napi::Int32Array>();
  int size = 0;
  MPI_Comm_size(c, &size);
  if (int(counts.ElementLength()) != size || int(displs.ElementLength()) != size) fail(env, "allgatherv: one count per rank");
  for (int j = 0; j < size; j++) {
    if (counts[j] < 0 || displs[j] < 0 || size_t(displs[j]) + size_t(counts[j]) > r.bytes) fail(env, "allgatherv: recv too small");
  }
  MPI_Request req;
  check(env, MPI_Iallgatherv(s.data, count_of(env, s.bytes), MPI_BYTE, r.data, counts.Data(), displs.Data(), MPI_BYTE, c, &req),
        "MPI_Iallgatherv");
  wait_or_throw(env, &req, info[5].As<Napi::Number>().DoubleValue(), "allGather");
  return env.Undefined();
}

// alltoallw(comm, sends[], recvs[], timeoutS): sends[j] goes to rank j, recvs[j] receives rank j's; every buffer
// is a separate typed array, described by an absolute-address datatype (MPI_BOTTOM), so nothing is packed.
Napi::Value Alltoallw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm c = comm_arg(info, 0);
  int size = 0;
  MPI_Comm_size(c, &size);
  auto sends = info[1].As<Napi::Array>(), recvs = info[2].As<Napi::Array>();
  if (int(sends.Length()) != size || int(recvs.Length()) != size) fail(env, "alltoallw: one buffer per rank");
  std::vector<MPI_Datatype> types(2 * size, MPI_BYTE);
  std::vector<int> counts(2 * size, 0), displs(2 * size, 0);
  auto describe = [&](const Bytes& b, int k) {
    if (b.bytes == 0) return;
    MPI_Aint addr;
    MPI_Get_address(b.data, &addr);
    int len = count_of(env, b.bytes);
    MPI_Type_create_hindexed(1, &len, &addr, MPI_BYTE, &types[k]);
    MPI_Type_commit(&types[k]);
    counts[k] = 1;
  };
  for (int j = 0; j < size; j++) {
    describe(bytes_arg(info, sends.Get(uint32_t(j)), "send"), j);
    describe(bytes_arg(info, recvs.Get(uint32_t(j)), "recv"), size + j);
  }
  MPI_Request req;
  const int rc = MPI_Ialltoallw(MPI_BOTTOM, counts.data(), displs.data(), types.data(), MPI_BOTTOM, counts.data() + size,
                                displs.data() + size, types.data() + size, c, &req);
  const bool started = rc == MPI_SUCCESS;
  const double timeoutS = info[3].As<Napi::Number>().DoubleValue();
  const bool done = started && wait_for(&req, timeoutS);
  for (auto& t : types) {
    if (t != MPI_BYTE) MPI_Type_free(&t);
  }
  check(env, rc, "MPI_Ialltoallw");
  if (!done) timed_out(env, timeoutS, "allToAll");
  return env.Undefined();
}

// sendrecv(comm, peer, send, recv, timeoutS): MPI's own point-to-point exchange with one peer (MPI_Isend /
// MPI_Irecv of bytes, no header), the transport that bench:mpi sets the collectives beside.
Napi::Value Sendrecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm c = comm_arg(info, 0);
  const int peer = info[1].As<Napi::Number>().Int32Value();
  Bytes s = bytes_arg(info, info[2], "send"), r = bytes_arg(info, info[3], "recv");
  int size = 0;
  MPI_Comm_size(c, &size);
  if (peer < 0 || peer >= size) fail(env, "sendrecv: peer " + std::to_string(peer) + " not in [0, " + std::to_string(size) + ")");
  MPI_Request reqs[2];
  check(env, MPI_Irecv(r.data, count_of(env, r.bytes), MPI_BYTE, peer, P2P_TAG, c, &reqs[0]), "MPI_Irecv");
  check(env, MPI_Isend(s.data, count_of(env, s.bytes), MPI_BYTE, peer, P2P_TAG, c, &reqs[1]), "MPI_Isend");
  const double timeoutS = info[4].As<Napi::Number>().DoubleValue();
  for (MPI_Request& q : reqs) wait_or_throw(env, &q, timeoutS, "sendRecv");
  return env.Undefined();
}

// abort(code): ends every rank of the job (MPI_Abort on the world communicator).
Napi::Value Abort(const Napi::CallbackInfo& info) {
  MPI_Abort(MPI_COMM_WORLD, info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("split", Napi::Function::New(env, Split));
  exports.Set("headers", Napi::Function::New(env, Headers));
  exports.Set("allgatherv", Napi::Function::New(env, Allgatherv));
  exports.Set("alltoallw", Napi::Function::New(env, Alltoallw));
  exports.Set("sendrecv", Napi::Function::New(env, Sendrecv));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  return exports;
}

}  // namespace

NODE_API_MODULE(moekit_mpi, Module)
