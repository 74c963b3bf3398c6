// The benchmark's load generator (driven by bench/run.sh; `make bench`). gRPC callback API: many
// calls in flight from a few gRPC threads, never a thread per call. Each mode writes one JSON
// object (to --out, else stdout); `report` turns them into the summary table.
//
//   loadgen fetch  --target=H:P --out=reply.bin        one GetContact(id:12345): its reply bytes
//   loadgen hit    --gateway=H:P --bare=H:P ...        cache-hit path vs the bare server
//   loadgen miss   --gateway=H:P --sandbox=URL ...     no-cache call vs a direct HTTP GET
//   loadgen budget --gateways=H:P,H:P,H:P --sandbox=URL ...   10x overload on one bucket
//   loadgen coalesce --gateways=H:P,H:P,H:P --sandbox=URL   identical cold reads over replicas
//   loadgen report --hit=F --miss=F --budget=F --coalesce=F   the summary table
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <tuple>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "curl/curl.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.pb.h"

ABSL_FLAG(std::string, out, "", "write the result here (default stdout)");
ABSL_FLAG(std::string, target, "", "fetch: gRPC address HOST:PORT");
ABSL_FLAG(std::string, request_out, "",
          "fetch: also write the request as a gRPC length-prefixed message (h2load's body)");
ABSL_FLAG(std::string, gateway, "", "hit, miss: the gateway's gRPC address HOST:PORT");
ABSL_FLAG(std::string, bare, "", "hit, miss: the bare server's gRPC address HOST:PORT");
ABSL_FLAG(int, gateway_pid, 0, "hit: the gateway's pid (its CPU time per call is reported)");
ABSL_FLAG(int, bare_pid, 0, "hit: the bare server's pid");
ABSL_FLAG(std::string, sandbox, "", "hit, miss, budget: the sandbox's base URL http://HOST:PORT");
ABSL_FLAG(std::string, token, "sandbox-token", "miss: bearer token for the direct HTTP GET");
ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"64"}),
          "hit: calls in flight in the closed-loop runs (each value is run)");
ABSL_FLAG(int, channels, 2, "hit: client connections the calls are spread over");
ABSL_FLAG(int, reps, 4, "hit: repetitions of every closed-loop run (gateway and bare alternate)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "hit: warm-up before each measurement");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(3),
          "hit: length of each closed-loop measurement; budget: length of the overload");
ABSL_FLAG(absl::Duration, open_duration, absl::Seconds(5), "hit: length of the open-loop runs");
ABSL_FLAG(std::vector<std::string>, open_fractions, std::vector<std::string>({"0.5", "0.25"}),
          "hit: open-loop rates as fractions of the gateway's peak");
ABSL_FLAG(int, open_reps, 2, "hit: runs of each server at each open-loop rate (alternating)");
ABSL_FLAG(double, open_rate, 0, "hit: rate of the 0.5 open-loop run, instead of half the peak");
ABSL_FLAG(
    absl::Duration, tick, absl::Microseconds(100),
    "hit: the open loop's pacer wakes at most this often (calls due meanwhile start together)");
ABSL_FLAG(int, calls, 2000, "miss: sequential calls of each kind");
ABSL_FLAG(int, block, 100, "miss: calls per block (gateway and direct blocks alternate)");
ABSL_FLAG(int, server_core, -1,
          "miss: also time the direct GET from this core (the server's: the gateway's own "
          "upstream request crosses cores like this); -1 leaves it out");
ABSL_FLAG(std::vector<std::string>, gateways, {}, "budget: the replicas' gRPC addresses");
ABSL_FLAG(int, limit, 10, "budget: the upstream's limit for the bucket, requests per second");
ABSL_FLAG(double, overload, 10, "budget: offered load as a multiple of --limit");
ABSL_FLAG(absl::Duration, deadline, absl::Milliseconds(1500), "budget: each call's deadline");
ABSL_FLAG(int, coalesce_calls, 100, "coalesce: concurrent identical calls");
ABSL_FLAG(std::string, coalesce_identifier, "id:67890",
          "coalesce: the contact read (not read before in the run: a cold cache)");
ABSL_FLAG(std::string, coalesce, "", "report: the coalesce mode's JSON");
ABSL_FLAG(std::string, hit, "", "report: the hit mode's JSON");
ABSL_FLAG(std::string, miss, "", "report: the miss mode's JSON");
ABSL_FLAG(std::string, budget, "", "report: the budget mode's JSON");
ABSL_FLAG(std::string, budget1, "", "report: the budget mode's JSON with one replica");
ABSL_FLAG(std::string, coalesce_base, "",
          "report: the coalesce mode's JSON over replicas that share no Redis");
ABSL_FLAG(std::string, h2load, "", "report: bench/run.sh's pinned h2load runs (JSON)");
ABSL_FLAG(std::string, callgrind, "", "report: bench/run.sh's callgrind counts (JSON)");
ABSL_FLAG(std::string, commit, "", "report: the commit benchmarked");

namespace gateway::bench {
namespace {

using nlohmann::json;

constexpr char kMethod[] = "/respondio.v2.ContactService/GetContact";
constexpr char kIdentifier[] = "id:12345";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
void SleepUntilNs(int64_t t) {
  const int64_t now = NowNs();
  if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
}
int64_t ToNs(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// User + system CPU seconds of a process (0 if unknown).
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after "pid (comm)": state is field 3, utime 14, stime 15.
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  if (fields.size() < 13) return 0;
  double utime = 0, stime = 0;
  absl::SimpleAtod(fields[11], &utime);
  absl::SimpleAtod(fields[12], &stime);
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}
double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// CPU seconds spent by the whole machine (all cores, every process) since boot.
double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq + steal) / sysconf(_SC_CLK_TCK);
}

// CPU use over an interval: the server under test, this load generator, and everything else on
// the machine (other processes: what makes a shared machine noisy).
class CpuMeter {
 public:
  explicit CpuMeter(int pid) : pid_(pid) {}
  void Start() {
    server0_ = ProcessCpuSeconds(pid_);
    self0_ = SelfCpuSeconds();
    machine0_ = MachineBusySeconds();
    t0_ = absl::Now();
  }
  // Cores used since Start(): {"server", "loadgen", "others"}, and the seconds elapsed.
  json Stop() {
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0_);
    const double server = (ProcessCpuSeconds(pid_) - server0_) / seconds;
    const double self = (SelfCpuSeconds() - self0_) / seconds;
    const double machine = (MachineBusySeconds() - machine0_) / seconds;
    server_seconds_ = server * seconds;
    return {{"server_cpu_cores", server},
            {"client_cpu_cores", self},
            {"other_cpu_cores", std::max(0.0, machine - server - self)},
            {"seconds", seconds}};
  }
  double server_seconds() const { return server_seconds_; }

 private:
  const int pid_;
  double server0_ = 0, self0_ = 0, machine0_ = 0, server_seconds_ = 0;
  absl::Time t0_;
};

std::string RequestBytes() {
  respondio::v2::GetContactRequest request;
  request.set_identifier(kIdentifier);
  return request.SerializeAsString();
}
grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}
std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// `n` channels to one address, each on its own connection.
std::vector<std::unique_ptr<grpc::GenericStub>> Stubs(const std::string& address, int n) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// Calls one at a time from this thread, on its own completion queue (no thread hop).
class SequentialCaller {
 public:
  explicit SequentialCaller(const std::string& address) : stub_(std::move(Stubs(address, 1)[0])) {}
  ~SequentialCaller() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  grpc::Status Call(const std::string& request_bytes, bool no_cache,
                    std::string* reply_bytes = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    context.AddMetadata("x-caller", "bench");
    if (no_cache) context.AddMetadata("cache-control", "no-cache");
    const grpc::ByteBuffer request = ToBuffer(request_bytes);
    grpc::ByteBuffer reply;
    grpc::Status status;
    auto call = stub_->PrepareUnaryCall(&context, kMethod, request, &cq_);
    call->StartCall();
    call->Finish(&reply, &status, this);
    void* tag = nullptr;
    bool ok = false;
    cq_.Next(&tag, &ok);
    if (status.ok() && reply_bytes != nullptr) *reply_bytes = FromBuffer(reply);
    return status;
  }

 private:
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::CompletionQueue cq_;
};

// ---- HTTP (libcurl, one keep-alive connection per client) ----

class HttpClient {
 public:
  HttpClient() : curl_(curl_easy_init()) {
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpClient::Write);
    curl_easy_setopt(curl_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
  }
  ~HttpClient() { curl_easy_cleanup(curl_); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Returns the HTTP status (0 when the request failed); the body goes to `body`.
  long Request(const std::string& method, const std::string& url, std::string* body,
               const std::vector<std::string>& headers = {}) {
    body->clear();
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method == "GET" ? nullptr : method.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, body);
    const CURLcode rc = curl_easy_perform(curl_);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    curl_slist_free_all(list);
    return status;
  }

 private:
  static size_t Write(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  CURL* curl_;
};

// The sandbox's request log for one endpoint (see sandbox/README.md).
json SandboxRequests(const std::string& sandbox, const std::string& endpoint) {
  HttpClient http;
  std::string body;
  if (http.Request("GET", absl::StrCat(sandbox, "/__admin/requests?endpoint=", endpoint), &body) !=
      200) {
    return json::array();
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("requests")) return json::array();
  return j["requests"];
}
void ClearSandboxRequests(const std::string& sandbox) {
  HttpClient http;
  std::string body;
  http.Request("DELETE", absl::StrCat(sandbox, "/__admin/requests"), &body);
}

json Latencies(const Histogram& h) {
  return {{"count", h.count()},
          {"p50_us", h.QuantileMicros(0.50)},
          {"p90_us", h.QuantileMicros(0.90)},
          {"p99_us", h.QuantileMicros(0.99)},
          {"p999_us", h.QuantileMicros(0.999)},
          {"mean_us", h.MeanMicros()},
          {"max_us", h.MaxMicros()}};
}

// ---- closed loop: `concurrency` calls always in flight ----

class ClosedLoop {
 public:
  ClosedLoop(std::vector<std::unique_ptr<grpc::GenericStub>>* stubs, std::string request,
             int concurrency, int64_t measure_from, int64_t measure_to)
      : stubs_(stubs),
        request_(std::move(request)),
        concurrency_(concurrency),
        from_(measure_from),
        to_(measure_to),
        done_(concurrency) {}

  void Start() {
    for (int i = 0; i < concurrency_; ++i) Issue(i);
  }
  void Wait() { done_.Wait(); }

  const Histogram& histogram() const { return histogram_; }
  uint64_t ok() const { return ok_.load(); }
  uint64_t errors() const { return errors_.load(); }
  std::string error_example() {
    absl::MutexLock lock(&mu_);
    return error_example_;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer reply;
    int64_t start = 0;
  };

  void Issue(int worker) {
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    call->context.AddMetadata("x-caller", "bench");
    call->request = ToBuffer(request_);
    call->start = NowNs();
    (*stubs_)[worker % stubs_->size()]->UnaryCall(
        &call->context, kMethod, grpc::StubOptions(), &call->request, &call->reply,
        [this, call, worker](grpc::Status status) {
          const int64_t now = NowNs();
          if (status.ok()) {
            if (now >= from_ && now < to_) {
              histogram_.Record(now - call->start);
              ok_.fetch_add(1, std::memory_order_relaxed);
            }
          } else {
            errors_.fetch_add(1, std::memory_order_relaxed);
            absl::MutexLock lock(&mu_);
            error_example_ = absl::StrCat(status.error_code(), " ", status.error_message());
          }
          delete call;
          if (now < to_) {
            Issue(worker);
          } else {
            done_.DecrementCount();
          }
        });
  }

  std::vector<std::unique_ptr<grpc::GenericStub>>* stubs_;
  const std::string request_;
  const int concurrency_;
  const int64_t from_;
  const int64_t to_;
  absl::BlockingCounter done_;
  Histogram histogram_;
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> errors_{0};
  absl::Mutex mu_;
  std::string error_example_ ABSL_GUARDED_BY(mu_);
};

json RunClosed(const std::string& name, std::vector<std::unique_ptr<grpc::GenericStub>>* stubs,
               int pid, int concurrency) {
  const int64_t start = NowNs();
  const int64_t from = start + ToNs(absl::GetFlag(FLAGS_warmup));
  const int64_t to = from + ToNs(absl::GetFlag(FLAGS_duration));
  ClosedLoop loop(stubs, RequestBytes(), concurrency, from, to);
  loop.Start();
  SleepUntilNs(from);
  CpuMeter cpu(pid);
  cpu.Start();
  SleepUntilNs(to);
  json j = cpu.Stop();
  loop.Wait();
  const double rate = static_cast<double>(loop.ok()) / ((to - from) / 1e9);
  j.update(
      {{"server", name},
       {"concurrency", concurrency},
       {"throughput", rate},
       {"errors", loop.errors()},
       {"latency", Latencies(loop.histogram())},
       {"server_cpu_us_per_call", loop.ok() == 0 ? 0 : cpu.server_seconds() / loop.ok() * 1e6}});
  if (loop.errors() > 0) j["error_example"] = loop.error_example();
  std::cerr << absl::StrFormat(
      "  closed loop %-8s %3d in flight: %8.0f calls/s  p50 %6.0f us  p99 %6.0f us  cores: "
      "server %.2f, loadgen %.2f, others %.2f; %llu errors\n",
      name, concurrency, rate, loop.histogram().QuantileMicros(0.5),
      loop.histogram().QuantileMicros(0.99), j["server_cpu_cores"].get<double>(),
      j["client_cpu_cores"].get<double>(), j["other_cpu_cores"].get<double>(),
      static_cast<unsigned long long>(loop.errors()));
  return j;
}

// ---- open loop: calls start at a fixed rate whatever the latency ----

json RunOpen(const std::string& name, std::vector<std::unique_ptr<grpc::GenericStub>>* stubs,
             int pid, double rate) {
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer reply;
    int64_t intended = 0;
    int64_t issued = 0;
    bool measured = false;
  };
  if (!(rate >= 1)) return {{"server", name}, {"rate", rate}, {"error", "no rate to run at"}};
  const std::string request_bytes = RequestBytes();
  Histogram latency;     // from each call's scheduled start (no coordinated omission)
  Histogram from_issue;  // from when the call was actually started
  Histogram lag;         // how late the pacer started calls (the client's share of `latency`)
  std::atomic<uint64_t> errors{0};
  const int64_t interval = static_cast<int64_t>(1e9 / rate);
  const int64_t tick = ToNs(absl::GetFlag(FLAGS_tick));
  const int64_t start = NowNs();
  const int64_t from = start + ToNs(absl::GetFlag(FLAGS_warmup));
  const int64_t to = from + ToNs(absl::GetFlag(FLAGS_open_duration));
  absl::Mutex mu;
  uint64_t issued = 0, completed = 0;
  CpuMeter cpu(pid);
  bool measuring = false;
  int64_t next = start;
  size_t i = 0;
  while (next < to) {
    const int64_t now = NowNs();
    if (!measuring && now >= from) {
      cpu.Start();
      measuring = true;
    }
    for (; next <= now && next < to; next += interval, ++i) {
      auto* call = new Call();
      call->intended = next;
      call->measured = next >= from;
      call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      call->context.AddMetadata("x-caller", "bench");
      call->request = ToBuffer(request_bytes);
      call->issued = NowNs();
      if (call->measured) lag.Record(call->issued - next);
      {
        absl::MutexLock lock(&mu);
        ++issued;
      }
      (*stubs)[i % stubs->size()]->UnaryCall(&call->context, kMethod, grpc::StubOptions(),
                                             &call->request, &call->reply,
                                             [&, call](grpc::Status status) {
                                               const int64_t done = NowNs();
                                               if (!status.ok()) {
                                                 errors.fetch_add(1);
                                               } else if (call->measured) {
                                                 latency.Record(done - call->intended);
                                                 from_issue.Record(done - call->issued);
                                               }
                                               delete call;
                                               absl::MutexLock lock(&mu);
                                               ++completed;
                                             });
    }
    // Waking for every call would cost the pacer (on the same cores as the server) more than
    // the calls; it wakes at most once per tick and starts every call that is due.
    SleepUntilNs(std::min(std::max(next, now + tick), to));
  }
  json j = cpu.Stop();
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&] { return completed == issued; };
    mu.Await(absl::Condition(&all_done));
  }
  j.update({{"server", name},
            {"rate", rate},
            {"achieved_rate", latency.count() / ((to - from) / 1e9)},
            {"server_cpu_us_per_call",
             latency.count() == 0 ? 0 : cpu.server_seconds() / latency.count() * 1e6},
            {"errors", errors.load()},
            {"latency", Latencies(latency)},
            {"latency_from_issue", Latencies(from_issue)},
            {"pacer_lag", Latencies(lag)},
            {"tick_us", tick / 1e3}});
  std::cerr << absl::StrFormat(
      "  open loop   %-8s %6.0f calls/s: p50 %6.0f us  p99 %6.0f us  p99.9 %6.0f us  (from issue: "
      "p99 %.0f us; pacer lag p99 %.0f us); cores: server %.2f, loadgen %.2f, others %.2f; %llu "
      "errors\n",
      name, rate, latency.QuantileMicros(0.5), latency.QuantileMicros(0.99),
      latency.QuantileMicros(0.999), from_issue.QuantileMicros(0.99), lag.QuantileMicros(0.99),
      j["server_cpu_cores"].get<double>(), j["client_cpu_cores"].get<double>(),
      j["other_cpu_cores"].get<double>(), static_cast<unsigned long long>(errors.load()));
  return j;
}

// ---- modes ----

void Emit(const json& j) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << j.dump(2) << std::endl;
  } else {
    std::ofstream(out) << j.dump(2) << "\n";
  }
}

int Fetch() {
  std::string reply;
  grpc::Status status =
      SequentialCaller(absl::GetFlag(FLAGS_target)).Call(RequestBytes(), false, &reply);
  if (!status.ok() || reply.empty()) {
    std::cerr << "loadgen fetch: GetContact failed: " << status.error_code() << " "
              << status.error_message() << "\n";
    return 1;
  }
  respondio::v2::GetContactResponse parsed;
  if (!parsed.ParseFromString(reply) || parsed.contact().id() != 12345) {
    std::cerr << "loadgen fetch: the reply is not contact 12345\n";
    return 1;
  }
  std::ofstream(absl::GetFlag(FLAGS_out), std::ios::binary) << reply;
  if (const std::string path = absl::GetFlag(FLAGS_request_out); !path.empty()) {
    // gRPC's framing: a 0 byte (not compressed), the length big-endian, the message.
    const std::string request = RequestBytes();
    std::string framed(5, '\0');
    for (int i = 0; i < 4; ++i) framed[1 + i] = static_cast<char>((request.size() >> (24 - 8 * i)) & 0xff);
    std::ofstream(path, std::ios::binary) << framed << request;
  }
  std::cerr << "  fetched GetContact(" << kIdentifier << "): " << reply.size() << " reply bytes\n";
  return 0;
}

int Hit() {
  const int channels = absl::GetFlag(FLAGS_channels);
  auto gateway = Stubs(absl::GetFlag(FLAGS_gateway), channels);
  auto bare = Stubs(absl::GetFlag(FLAGS_bare), channels);
  const std::string sandbox = absl::GetFlag(FLAGS_sandbox);
  // Both must answer, with the same bytes.
  std::string gateway_reply, bare_reply;
  const grpc::Status g =
      SequentialCaller(absl::GetFlag(FLAGS_gateway)).Call(RequestBytes(), false, &gateway_reply);
  const grpc::Status b =
      SequentialCaller(absl::GetFlag(FLAGS_bare)).Call(RequestBytes(), false, &bare_reply);
  if (!g.ok() || !b.ok()) {
    std::cerr << "loadgen hit: a server does not answer: gateway " << g.error_message() << ", bare "
              << b.error_message() << "\n";
    return 1;
  }
  const size_t upstream_before =
      sandbox.empty() ? 0 : SandboxRequests(sandbox, "get_contact").size();

  std::vector<int> levels;
  for (const auto& c : absl::GetFlag(FLAGS_concurrency)) {
    int n = 0;
    if (absl::SimpleAtoi(c, &n) && n > 0) levels.push_back(n);
  }
  json closed = json::array();
  double peak_gateway = 0, peak_bare = 0;
  json best_gateway, best_bare;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    for (int level : levels) {
      // Alternate which goes first so drift on a noisy machine does not favour one.
      for (int k = 0; k < 2; ++k) {
        const bool gateway_turn = (k == 0) == (rep % 2 == 0);
        json run = gateway_turn
                       ? RunClosed("gateway", &gateway, absl::GetFlag(FLAGS_gateway_pid), level)
                       : RunClosed("bare", &bare, absl::GetFlag(FLAGS_bare_pid), level);
        run["rep"] = rep;
        const double rate = run["throughput"].get<double>();
        if (gateway_turn && rate > peak_gateway) peak_gateway = rate, best_gateway = run;
        if (!gateway_turn && rate > peak_bare) peak_bare = rate, best_bare = run;
        closed.push_back(run);
      }
    }
  }
  // Open loop at fractions of the gateway's peak (the first one is the target's: half), the
  // bare server at the same rates for reference; --open_reps runs of each, alternating. The
  // run with the lower p99 stands for each server (noise only ever adds latency); all are kept.
  json open = json::array();
  for (const auto& f : absl::GetFlag(FLAGS_open_fractions)) {
    double fraction = 0;
    if (!absl::SimpleAtod(f, &fraction) || fraction <= 0) continue;
    const double rate = absl::GetFlag(FLAGS_open_rate) > 0
                            ? absl::GetFlag(FLAGS_open_rate) * fraction / 0.5
                            : peak_gateway * fraction;
    json level = {{"fraction", fraction}, {"rate", rate}, {"runs", json::array()}};
    for (int rep = 0; rep < std::max(1, absl::GetFlag(FLAGS_open_reps)); ++rep) {
      for (int k = 0; k < 2; ++k) {
        const bool gateway_turn = (k == 0) == (rep % 2 == 0);
        json run = gateway_turn
                       ? RunOpen("gateway", &gateway, absl::GetFlag(FLAGS_gateway_pid), rate)
                       : RunOpen("bare", &bare, absl::GetFlag(FLAGS_bare_pid), rate);
        if (!run.contains("latency")) continue;
        const std::string who = run["server"];
        if (!level.contains(who) || run["latency"]["p99_us"].get<double>() <
                                        level[who]["latency"]["p99_us"].get<double>()) {
          level[who] = run;
        }
        level["runs"].push_back(run);
      }
    }
    open.push_back(level);
  }
  const size_t upstream_after =
      sandbox.empty() ? 0 : SandboxRequests(sandbox, "get_contact").size();

  Emit({{"reply_bytes", gateway_reply.size()},
        {"same_reply_bytes", gateway_reply == bare_reply},
        {"channels", channels},
        {"concurrency_levels", levels},
        {"reps", absl::GetFlag(FLAGS_reps)},
        {"warmup_s", absl::ToDoubleSeconds(absl::GetFlag(FLAGS_warmup))},
        {"duration_s", absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration))},
        {"open_duration_s", absl::ToDoubleSeconds(absl::GetFlag(FLAGS_open_duration))},
        {"closed", closed},
        {"best_gateway", best_gateway},
        {"best_bare", best_bare},
        {"open", open},
        {"upstream_requests_during_hit_runs",
         static_cast<int64_t>(upstream_after) - static_cast<int64_t>(upstream_before)}});
  return 0;
}

int Miss() {
  const std::string sandbox = absl::GetFlag(FLAGS_sandbox);
  const std::string url = absl::StrCat(sandbox, "/contact/", kIdentifier);
  const std::vector<std::string> headers = {
      absl::StrCat("Authorization: Bearer ", absl::GetFlag(FLAGS_token)),
      "Accept: application/json"};
  const std::string request = RequestBytes();
  SequentialCaller gateway(absl::GetFlag(FLAGS_gateway));
  std::unique_ptr<SequentialCaller> bare;
  if (!absl::GetFlag(FLAGS_bare).empty()) {
    bare = std::make_unique<SequentialCaller>(absl::GetFlag(FLAGS_bare));
  }
  HttpClient http;
  std::string body;

  // Four kinds of call, in alternating blocks so drift on a noisy machine spreads evenly.
  struct Series {
    std::string name;
    std::function<bool()> call;
    int core = -1;  // >= 0: its blocks run on this core
    Histogram histogram;
    int errors = 0;
  };
  std::vector<std::unique_ptr<Series>> series;
  auto add = [&](std::string name, std::function<bool()> call, int core = -1) {
    auto s = std::make_unique<Series>();
    s->name = std::move(name);
    s->call = std::move(call);
    s->core = core;
    series.push_back(std::move(s));
  };
  cpu_set_t own_cores;  // what the process was started with (taskset)
  CPU_ZERO(&own_cores);
  pthread_getaffinity_np(pthread_self(), sizeof(own_cores), &own_cores);
  auto move_to = [&](int core) {
    if (core < 0) {
      pthread_setaffinity_np(pthread_self(), sizeof(own_cores), &own_cores);
      return;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(core, &one);
    pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
  };
  std::string error_example;
  add("direct", [&] { return http.Request("GET", url, &body, headers) == 200; });
  if (const int core = absl::GetFlag(FLAGS_server_core); core >= 0) {
    add("direct_server_core", [&] { return http.Request("GET", url, &body, headers) == 200; },
        core);
  }
  add("gateway_miss", [&] {
    grpc::Status s = gateway.Call(request, /*no_cache=*/true);
    if (!s.ok()) error_example = absl::StrCat(s.error_code(), " ", s.error_message());
    return s.ok();
  });
  add("gateway_hit", [&] { return gateway.Call(request, /*no_cache=*/false).ok(); });
  if (bare != nullptr) add("bare", [&] { return bare->Call(request, false).ok(); });

  for (int i = 0; i < 100; ++i) {
    for (auto& s : series) {
      move_to(s->core);
      s->call();
    }
  }
  move_to(-1);
  const size_t before = SandboxRequests(sandbox, "get_contact").size();
  const int calls = absl::GetFlag(FLAGS_calls);
  const int block = std::max(1, absl::GetFlag(FLAGS_block));
  for (int done = 0; done < calls; done += block) {
    const int n = std::min(block, calls - done);
    for (auto& s : series) {
      move_to(s->core);
      for (int i = 0; i < n; ++i) {
        const int64_t t = NowNs();
        const bool ok = s->call();
        const int64_t d = NowNs() - t;
        if (ok) {
          s->histogram.Record(d);
        } else {
          ++s->errors;
        }
      }
    }
  }
  move_to(-1);
  const size_t after = SandboxRequests(sandbox, "get_contact").size();
  const int direct_series = absl::GetFlag(FLAGS_server_core) >= 0 ? 2 : 1;
  json j = {{"calls", calls},
            {"block", block},
            {"upstream_requests", after - before},
            {"expected_upstream_requests", (1 + direct_series) * calls}};
  for (auto& s : series) {
    j[s->name] = Latencies(s->histogram);
    j[s->name + "_errors"] = s->errors;
    std::cerr << absl::StrFormat("  sequential %-13s p50 %5.0f us  p99 %5.0f us  mean %5.0f us\n",
                                 s->name, s->histogram.QuantileMicros(0.5),
                                 s->histogram.QuantileMicros(0.99), s->histogram.MeanMicros());
  }
  if (!error_example.empty()) j["gateway_error_example"] = error_example;
  Emit(j);
  return 0;
}

// Arrival times (ms) of `status`-filtered requests, sorted.
std::vector<double> Arrivals(const json& requests) {
  std::vector<double> out;
  for (const auto& r : requests) out.push_back(r["time_ms"].get<double>());
  std::sort(out.begin(), out.end());
  return out;
}
int MaxPerSecond(const std::vector<double>& times) {
  int best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= 1000.0) ++lo;
    best = std::max(best, static_cast<int>(hi - lo + 1));
  }
  return best;
}

int Budget() {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (const auto& address : absl::GetFlag(FLAGS_gateways)) {
    auto one = Stubs(address, 1);
    stubs.push_back(std::move(one[0]));
  }
  if (stubs.empty()) {
    std::cerr << "loadgen budget: --gateways is empty\n";
    return 1;
  }
  const std::string sandbox = absl::GetFlag(FLAGS_sandbox);
  const int limit = absl::GetFlag(FLAGS_limit);
  const double rate = limit * absl::GetFlag(FLAGS_overload);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration deadline = absl::GetFlag(FLAGS_deadline);
  ClearSandboxRequests(sandbox);

  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer reply;
  };
  const std::string request_bytes = RequestBytes();
  const int total = static_cast<int>(rate * absl::ToDoubleSeconds(duration));
  absl::BlockingCounter pending(total);
  std::atomic<int> ok{0}, exhausted{0}, deadline_exceeded{0}, other{0};
  absl::Mutex mu;
  std::string other_example;
  Histogram ok_latency;
  const int64_t start = NowNs();
  const int64_t interval = static_cast<int64_t>(1e9 / rate);
  for (int i = 0; i < total; ++i) {
    SleepUntilNs(start + i * interval);
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    call->context.AddMetadata("cache-control", "no-cache");
    call->context.AddMetadata("x-caller", absl::StrCat("load-", i % 3));
    call->request = ToBuffer(request_bytes);
    const int64_t issued = NowNs();
    stubs[i % stubs.size()]->UnaryCall(
        &call->context, kMethod, grpc::StubOptions(), &call->request, &call->reply,
        [&, call, issued](grpc::Status status) {
          if (status.ok()) {
            ++ok;
            ok_latency.Record(NowNs() - issued);
          } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++exhausted;
          } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
            ++deadline_exceeded;
          } else {
            ++other;
            absl::MutexLock lock(&mu);
            other_example = absl::StrCat(status.error_code(), " ", status.error_message());
          }
          delete call;
          pending.DecrementCount();
        });
  }
  pending.Wait();

  const json requests = SandboxRequests(sandbox, "get_contact");
  const std::vector<double> arrivals = Arrivals(requests);
  int upstream_429 = 0, upstream_ok = 0;
  for (const auto& r : requests) {
    if (!r["status"].is_number()) continue;
    if (r["status"].get<int>() == 429) ++upstream_429;
    if (r["status"].get<int>() == 200) ++upstream_ok;
  }
  const double span_s = arrivals.size() >= 2 ? (arrivals.back() - arrivals.front()) / 1000.0 : 0;
  const double use = span_s > 0 ? (arrivals.size() - 1) / span_s / limit : 0;
  std::cerr << absl::StrFormat(
      "  budget: %d calls at %.0f/s over %zu replicas: %d ok, %d RESOURCE_EXHAUSTED, %d "
      "DEADLINE_EXCEEDED, %d other; upstream saw %zu (%d 429s), max %d in a 1 s window, use "
      "%.1f%%\n",
      total, rate, stubs.size(), ok.load(), exhausted.load(), deadline_exceeded.load(),
      other.load(), arrivals.size(), upstream_429, MaxPerSecond(arrivals), use * 100);
  json j = {{"replicas", stubs.size()},
            {"limit", limit},
            {"offered_rate", rate},
            {"duration_s", absl::ToDoubleSeconds(duration)},
            {"deadline_ms", absl::ToDoubleMilliseconds(deadline)},
            {"calls", total},
            {"ok", ok.load()},
            {"resource_exhausted", exhausted.load()},
            {"deadline_exceeded", deadline_exceeded.load()},
            {"other_errors", other.load()},
            {"ok_latency", Latencies(ok_latency)},
            {"upstream_requests", arrivals.size()},
            {"upstream_200", upstream_ok},
            {"upstream_429", upstream_429},
            {"max_per_second_window", MaxPerSecond(arrivals)},
            {"busy_span_s", span_s},
            {"budget_use", use}};
  if (!other_example.empty()) j["other_example"] = other_example;
  Emit(j);
  return 0;
}

// ---- coalesce: identical cold reads spread over replicas ----

// --coalesce_calls concurrent GetContact(--coalesce_identifier) calls, call i on replica
// i % replicas, all started before any can finish (the sandbox delays the upstream: run.sh
// injects the delay); then the upstream requests they caused, from the sandbox's log.
int Coalesce() {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (const auto& address : absl::GetFlag(FLAGS_gateways)) {
    auto one = Stubs(address, 1);
    stubs.push_back(std::move(one[0]));
  }
  if (stubs.empty()) {
    std::cerr << "loadgen coalesce: --gateways is empty\n";
    return 1;
  }
  const std::string sandbox = absl::GetFlag(FLAGS_sandbox);
  const int calls = absl::GetFlag(FLAGS_coalesce_calls);
  ClearSandboxRequests(sandbox);
  respondio::v2::GetContactRequest request;
  request.set_identifier(absl::GetFlag(FLAGS_coalesce_identifier));
  const std::string request_bytes = request.SerializeAsString();
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer reply;
  };
  absl::BlockingCounter pending(calls);
  absl::Mutex mu;
  int ok = 0, same = 0;
  std::string first_reply, error_example;
  for (int i = 0; i < calls; ++i) {
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    call->request = ToBuffer(request_bytes);
    stubs[i % stubs.size()]->UnaryCall(
        &call->context, kMethod, grpc::StubOptions(), &call->request, &call->reply,
        [&, call](grpc::Status status) {
          {
            absl::MutexLock lock(&mu);
            if (status.ok()) {
              const std::string reply = FromBuffer(call->reply);
              if (ok++ == 0) first_reply = reply;
              if (reply == first_reply) ++same;
            } else if (error_example.empty()) {
              error_example = absl::StrCat(status.error_code(), " ", status.error_message());
            }
          }
          delete call;
          pending.DecrementCount();
        });
  }
  pending.Wait();
  const size_t upstream = SandboxRequests(sandbox, "get_contact").size();
  std::cerr << absl::StrFormat(
      "  coalesce: %d identical cold reads over %zu replicas: %d OK (%d with the same reply), "
      "upstream saw %zu\n",
      calls, stubs.size(), ok, same, upstream);
  json j = {{"replicas", stubs.size()}, {"calls", calls},        {"ok", ok},
            {"same_reply", same},       {"upstream_requests", upstream}};
  if (!error_example.empty()) j["error_example"] = error_example;
  Emit(j);
  return 0;
}

// ---- report ----

json Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return json();
  json j = json::parse(in, nullptr, false);
  return j.is_discarded() ? json() : j;
}
std::string Ms(double us) { return absl::StrFormat("%.3f ms", us / 1000); }
std::string Rate(double per_second) {
  std::string digits = absl::StrFormat("%.0f", per_second);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits + "/s";
}
std::string Verdict(bool ok) { return ok ? "MET" : "MISSED"; }
std::string FirstLine(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      return std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
    }
  }
  return "";
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Issue 10's table: every figure next to its baseline measured in this run, the ratio (or the
// difference) and the target. Markdown, so the README can show it as printed.
std::string SummaryTable() {
  struct Row {
    std::string figure, baseline, gateway, ratio, target, verdict;
  };
  std::vector<Row> rows;
  const std::string no = "no result";
  auto missing = [&](const std::string& figure, const std::string& target) {
    rows.push_back({figure, no, no, "", target, "NOT RUN"});
  };

  // Throughput: within each rep, each gateway's rate over the bare server's of the same rep.
  const json h2 = Load(absl::GetFlag(FLAGS_h2load));
  for (const auto& [label, name, target] :
       std::vector<std::tuple<std::string, std::string, double>>{
           {"gateway-default", "cache-hit throughput, default flags / bare gRPC server", 0.85},
           {"gateway-nolog", "same, call log off", 0.90}}) {
    const std::string target_text = absl::StrFormat(">= %.2f", target);
    if (!h2.is_object() || !h2.contains("runs")) {
      missing(name, target_text);
      continue;
    }
    std::map<int, double> bare, gw;
    int failed = 0;
    for (const auto& r : h2["runs"]) {
      const int rep = r["rep"].get<int>();
      if (r["server"] == "bare") bare[rep] = r["rate"].get<double>();
      if (r["server"] == label) gw[rep] = r["rate"].get<double>();
      if (r["server"] == label || r["server"] == "bare") failed += std::max(0, r["failed"].get<int>());
    }
    std::vector<double> ratios, b, g;
    for (const auto& [rep, rate] : gw) {
      if (bare.count(rep) == 0 || bare[rep] <= 0) continue;
      ratios.push_back(rate / bare[rep]);
      b.push_back(bare[rep]);
      g.push_back(rate);
    }
    if (ratios.empty()) {
      missing(name, target_text);
      continue;
    }
    const double ratio = Median(ratios);
    bool ok = failed == 0;
    if (label == "gateway-default" && h2.value("default_gateway_not_ok", 0) > 0) ok = false;
    rows.push_back(
        {name + " (h2load pinned, median of " + std::to_string(ratios.size()) + " pairs)",
         Rate(Median(b)), Rate(Median(g)),
         absl::StrFormat("%.2f (%.2f..%.2f)", ratio, *std::min_element(ratios.begin(), ratios.end()),
                         *std::max_element(ratios.begin(), ratios.end())),
         target_text, !ok ? "ERRORS" : Verdict(ratio >= target)});
  }

  // The same runs' server CPU per call (for reference: what the throughput would be on a core
  // of its own, less sensitive to other processes on the server's core).
  if (h2.is_object() && h2.contains("runs")) {
    std::map<std::string, std::vector<double>> cpu;
    for (const auto& r : h2["runs"]) {
      if (r.contains("server_cpu_us_per_call")) {
        cpu[r["server"].get<std::string>()].push_back(r["server_cpu_us_per_call"].get<double>());
      }
    }
    for (const auto& [label, name] : std::vector<std::pair<std::string, std::string>>{
             {"gateway-default", "server CPU per cache hit, default flags (same h2load runs; reference)"},
             {"gateway-nolog", "same, call log off (reference)"}}) {
      if (cpu["bare"].empty() || cpu[label].empty()) continue;
      const double b = Median(cpu["bare"]), g = Median(cpu[label]);
      rows.push_back({name, absl::StrFormat("%.1f us", b), absl::StrFormat("%.1f us", g),
                      absl::StrFormat("bare/gateway %.2f", b / std::max(1e-9, g)), "", ""});
    }
  }

  // Instructions per hit under callgrind.
  const json cg = Load(absl::GetFlag(FLAGS_callgrind));
  std::map<std::string, double> per_call;
  if (cg.is_object() && cg.contains("runs")) {
    for (const auto& r : cg["runs"]) {
      if (r["succeeded"].get<int>() == r["calls"].get<int>()) {
        per_call[r["server"].get<std::string>()] = r["per_call"].get<double>();
      }
    }
  }
  for (const auto& [label, name, target] :
       std::vector<std::tuple<std::string, std::string, double>>{
           {"gateway-default", "gateway instructions per hit above the bare server, default flags (callgrind)", 10000},
           {"gateway-nolog", "same, call log off (for reference)", -1}}) {
    const std::string target_text = target > 0 ? "<= +10,000" : "";
    if (per_call.count("bare") == 0 || per_call.count(label) == 0) {
      missing(name, target_text);
      continue;
    }
    const double above = per_call[label] - per_call["bare"];
    rows.push_back({name, absl::StrFormat("%.0f", per_call["bare"]),
                    absl::StrFormat("%.0f", per_call[label]),
                    absl::StrFormat("%+.0f (x%.2f)", above, per_call[label] / per_call["bare"]),
                    target_text, target > 0 ? Verdict(above <= target) : ""});
  }

  // Miss path.
  const json miss = Load(absl::GetFlag(FLAGS_miss));
  for (const auto& [q, target] : std::vector<std::pair<std::string, double>>{{"p50", 150}, {"p99", 300}}) {
    const std::string name = "miss path: latency added over a direct HTTP GET, " + q;
    const std::string target_text = absl::StrFormat("<= +%.0f us", target);
    if (!miss.is_object() || !miss.contains("gateway_miss")) {
      missing(name, target_text);
      continue;
    }
    const double direct = miss["direct"][q + "_us"].get<double>();
    const double gw = miss["gateway_miss"][q + "_us"].get<double>();
    const bool ok = miss["gateway_miss_errors"].get<int>() == 0;
    rows.push_back({name, absl::StrFormat("%.0f us", direct), absl::StrFormat("%.0f us", gw),
                    absl::StrFormat("%+.0f us (x%.2f)", gw - direct, gw / std::max(1e-9, direct)),
                    target_text, ok ? Verdict(gw - direct <= target) : "ERRORS"});
  }
  // The miss's instructions against the hit's (reference, no target): what the upstream path
  // (admission, the HTTP exchange, JSON to proto, the cache fill) costs in instructions, which
  // the machine's scheduling does not blur the way it blurs latency.
  if (per_call.count("gateway-default") != 0 && per_call.count("gateway-default-miss") != 0) {
    const double hit = per_call["gateway-default"];
    const double miss_instructions = per_call["gateway-default-miss"];
    rows.push_back({"gateway instructions per miss (no-cache; baseline: a hit), default flags "
                    "(callgrind; reference)",
                    absl::StrFormat("%.0f", hit), absl::StrFormat("%.0f", miss_instructions),
                    absl::StrFormat("%+.0f (x%.2f)", miss_instructions - hit,
                                    miss_instructions / std::max(1.0, hit)),
                    "", ""});
  }

  // Budget.
  const json budget = Load(absl::GetFlag(FLAGS_budget));
  const json budget1 = Load(absl::GetFlag(FLAGS_budget1));
  auto per_admitted = [](const json& b) {
    const int admitted = b["upstream_requests"].get<int>();
    return admitted > 0 ? static_cast<double>(b.value("limiter_commands", int64_t{0})) / admitted
                        : 0.0;
  };
  {
    const std::string name = "Redis limiter commands per admitted call, 10x overload: 3 replicas (baseline: 1 replica)";
    if (!budget.is_object() || !budget.contains("upstream_requests")) {
      missing(name, "<= 1.5, independent of replicas");
    } else {
      const double three = per_admitted(budget);
      const bool have1 = budget1.is_object() && budget1.contains("upstream_requests");
      const double one = have1 ? per_admitted(budget1) : 0;
      rows.push_back({name, have1 ? absl::StrFormat("%.2f", one) : no,
                      absl::StrFormat("%.2f (%lld / %d)", three,
                                      static_cast<long long>(budget.value("limiter_commands", int64_t{0})),
                                      budget["upstream_requests"].get<int>()),
                      have1 && one > 0 ? absl::StrFormat("x%.2f", three / one) : "",
                      "<= 1.5, independent of replicas",
                      Verdict(three <= 1.5 && (!have1 || one <= 1.5))});
    }
  }
  {
    const std::string name = "budget use, 3 replicas, 10x overload (baseline: the upstream's limit)";
    if (!budget.is_object() || !budget.contains("upstream_requests")) {
      missing(name, ">= 97%, 0 429s, no second over");
    } else {
      const int limit = budget["limit"].get<int>();
      const double use = budget["budget_use"].get<double>();
      const int max_window = budget["max_per_second_window"].get<int>();
      const int r429 = budget["upstream_429"].get<int>();
      rows.push_back({name, absl::StrFormat("%d/s", limit),
                      absl::StrFormat("%.2f/s; %d 429s; max 1 s window %d", use * limit, r429, max_window),
                      absl::StrFormat("%.1f%%", use * 100), ">= 97%, 0 429s, no second over",
                      Verdict(use >= 0.97 && r429 == 0 && max_window <= limit)});
    }
  }

  // Coalescing.
  {
    const json c = Load(absl::GetFlag(FLAGS_coalesce));
    const json base = Load(absl::GetFlag(FLAGS_coalesce_base));
    const std::string name = "upstream requests for 100 concurrent identical cold reads over 3 replicas (baseline: replicas without Redis)";
    if (!c.is_object() || !c.contains("upstream_requests")) {
      missing(name, "1");
    } else {
      const int upstream = c["upstream_requests"].get<int>();
      const int calls = c["calls"].get<int>();
      const bool all_ok = c["ok"].get<int>() == calls && c["same_reply"].get<int>() == calls;
      const bool have_base = base.is_object() && base.contains("upstream_requests");
      const int b = have_base ? base["upstream_requests"].get<int>() : 0;
      rows.push_back({name, have_base ? std::to_string(b) : no,
                      absl::StrFormat("%d (%d/%d OK, same bytes)", upstream, c["same_reply"].get<int>(), calls),
                      have_base && b > 0 ? absl::StrFormat("x%.2f", static_cast<double>(upstream) / b) : "",
                      "1", all_ok ? Verdict(upstream == 1) : "ERRORS"});
    }
  }

  std::ostringstream o;
  o << "| figure | baseline (this run) | gateway | ratio / added | target | |\n"
    << "|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    o << "| " << r.figure << " | " << r.baseline << " | " << r.gateway << " | " << r.ratio << " | "
      << r.target << " | " << r.verdict << " |\n";
  }
  return o.str();
}

int Report() {
  std::ostringstream o;
  const std::string cpu = FirstLine("/proc/cpuinfo", "model name");
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  o << "==== make bench: respond-gateway " << absl::GetFlag(FLAGS_commit) << ", "
    << absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::Now(), absl::LocalTimeZone()) << "\n";
  o << "Machine: " << cores << " cores (" << (cpu.empty() ? "unknown CPU" : cpu) << ").\n"
    << "NOTE: the load generator and the server under test share these " << cores
    << " cores (with the sandbox and redis,\n"
    << "and with whatever else runs on the machine: the 'others' column), so absolute figures "
       "include\nthe load generator's own CPU and the machine's noise; compare each figure with "
       "its baseline,\nmeasured in this same run.\n\n";

  const json hit = Load(absl::GetFlag(FLAGS_hit));
  if (hit.is_object() && hit.contains("best_gateway") && hit["best_gateway"].is_object() &&
      hit["best_bare"].is_object()) {
    const json& g = hit["best_gateway"];
    const json& b = hit["best_bare"];
    const double ratio = g["throughput"].get<double>() / b["throughput"].get<double>();
    o << "1. Cache-hit path (gateway with the call log off): GetContact(" << kIdentifier << "), " << hit["reply_bytes"]
      << " reply bytes (" << (hit["same_reply_bytes"].get<bool>() ? "identical" : "DIFFERENT")
      << " from both servers)\n";
    o << absl::StrFormat(
        "   closed loop, %s calls in flight over %d connections, %d x %.0f s runs of each "
        "(alternating);\n   best run of each server:\n",
        absl::StrJoin(hit["concurrency_levels"].get<std::vector<int>>(), " or "),
        hit["channels"].get<int>(), hit["reps"].get<int>(), hit["duration_s"].get<double>());
    o << absl::StrFormat("   %-21s %11s %9s %9s %9s  %s\n", "", "throughput", "p50", "p99",
                         "CPU/call", "cores: server / loadgen / others");
    for (const json* r : {&b, &g}) {
      o << absl::StrFormat(
          "   %-21s %11s %9s %9s %6.1f us  %.2f / %.2f / %.2f  (%d in flight)\n",
          (*r)["server"] == "bare" ? "bare gRPC server" : "gateway (cache hit)",
          Rate((*r)["throughput"].get<double>()), Ms((*r)["latency"]["p50_us"].get<double>()),
          Ms((*r)["latency"]["p99_us"].get<double>()), (*r)["server_cpu_us_per_call"].get<double>(),
          (*r)["server_cpu_cores"].get<double>(), (*r)["client_cpu_cores"].get<double>(),
          (*r)["other_cpu_cores"].get<double>(), (*r)["concurrency"].get<int>());
    }
    // Each gateway run against the bare run next to it: the spread shows the machine's noise.
    std::vector<double> paired;
    const json& closed = hit["closed"];
    for (size_t i = 0; i + 1 < closed.size(); i += 2) {
      const json& x = closed[i]["server"] == "gateway" ? closed[i] : closed[i + 1];
      const json& y = closed[i]["server"] == "gateway" ? closed[i + 1] : closed[i];
      paired.push_back(x["throughput"].get<double>() / y["throughput"].get<double>());
    }
    std::sort(paired.begin(), paired.end());
    o << absl::StrFormat(
        "   gateway (call log off) / bare throughput, best runs: %.1f%%  (the loadgen's own gRPC "
        "client;\n   issue 10's throughput figures are h2load's, in the table at the end)\n",
        ratio * 100);
    if (!paired.empty()) {
      o << absl::StrFormat(
          "     run by run (each gateway run / the bare run beside it): median %.1f%%, range "
          "%.1f%% .. %.1f%%\n",
          paired[paired.size() / 2] * 100, paired.front() * 100, paired.back() * 100);
    }
    auto median_cpu = [&](const std::string& who) {
      std::vector<double> v;
      for (const auto& r : closed) {
        if (r["server"] == who) v.push_back(r["server_cpu_us_per_call"].get<double>());
      }
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    const double cpu_g = median_cpu("gateway"), cpu_b = median_cpu("bare");
    o << absl::StrFormat(
        "   server CPU per call (median of runs): gateway %.1f us, bare %.1f us: %.2fx, +%.1f us "
        "per hit.\n   The throughput ratio is pulled toward 1 because the loadgen's own CPU per "
        "call is paid\n   in both runs; this ratio is not.\n",
        cpu_g, cpu_b, cpu_g / std::max(1e-9, cpu_b), cpu_g - cpu_b);
    const json& open = hit["open"];
    if (!open.empty()) {
      o << absl::StrFormat(
          "   open loop (fixed rate, %.0f s per run; latency from each call's scheduled start, "
          "so the pacer's\n   own lateness counts too; the run with the lower p99 of each "
          "server shown):\n",
          hit["open_duration_s"].get<double>());
      o << absl::StrFormat("   %-21s %9s %9s %9s %9s %9s %8s  %s\n", "", "rate", "p50", "p99",
                           "p99.9", "pacer p99", "CPU/call", "cores: server / loadgen / others");
      for (const auto& level : open) {
        for (const char* who : {"bare", "gateway"}) {
          if (!level.contains(who)) continue;
          const json& r = level[who];
          std::vector<std::string> all;
          for (const auto& run : level["runs"]) {
            if (run["server"] == who) all.push_back(Ms(run["latency"]["p99_us"].get<double>()));
          }
          o << absl::StrFormat(
              "   %-21s %9s %9s %9s %9s %9s %5.1f us  %.2f / %.2f / %.2f%s\n",
              absl::StrFormat("%s at %.0f%% peak", std::string(who) == "bare" ? "bare" : "gateway",
                              level["fraction"].get<double>() * 100),
              Rate(r["rate"].get<double>()), Ms(r["latency"]["p50_us"].get<double>()),
              Ms(r["latency"]["p99_us"].get<double>()), Ms(r["latency"]["p999_us"].get<double>()),
              Ms(r["pacer_lag"]["p99_us"].get<double>()), r["server_cpu_us_per_call"].get<double>(),
              r["server_cpu_cores"].get<double>(), r["client_cpu_cores"].get<double>(),
              r["other_cpu_cores"].get<double>(),
              r["errors"].get<int>() > 0 ? absl::StrCat(", ", r["errors"].get<int>(), " errors")
                                         : "");
          if (all.size() > 1) {
            o << absl::StrFormat("   %-21s p99 of each run: %s\n", "", absl::StrJoin(all, ", "));
          }
        }
      }
      if (open[0].contains("gateway")) {
        const json& half = open[0]["gateway"];
        const double p99 = half["latency"]["p99_us"].get<double>();
        o << absl::StrFormat(
            "   gateway p99 at %.0f%% of its peak: %s  (target <= 2 ms: %s); the bare server at "
            "the same rate: %s\n",
            open[0]["fraction"].get<double>() * 100, Ms(p99), Verdict(p99 <= 2000),
            open[0].contains("bare") ? Ms(open[0]["bare"]["latency"]["p99_us"].get<double>())
                                     : std::string("n/a"));
        const double busy =
            (half["server_cpu_cores"].get<double>() + half["client_cpu_cores"].get<double>() +
             half["other_cpu_cores"].get<double>()) /
            cores;
        o << absl::StrFormat(
            "   (at a fixed rate calls arrive one by one and gRPC batches far less than with many "
            "in flight:\n   CPU per call, server and loadgen alike, is well above the closed "
            "loop's, so half the peak\n   rate kept the machine %.0f%% busy in that run, where "
            "any hiccup queues calls)\n",
            busy * 100);
      }
    } else {
      o << "   open loop: not run (no peak measured)\n";
    }
    int errors = 0;
    for (const auto& r : closed) errors += r["errors"].get<int>();
    o << "   errors in closed-loop runs: " << errors
      << "; upstream requests during the hit runs: " << hit["upstream_requests_during_hit_runs"]
      << " (0: every call a cache hit)\n";
    o << "   every closed-loop run:";
    int n = 0;
    for (const auto& r : closed) {
      if (n++ % 4 == 0) o << "\n    ";
      o << absl::StrFormat(" %s@%d %s;", r["server"].get<std::string>(),
                           r["concurrency"].get<int>(), Rate(r["throughput"].get<double>()));
    }
    o << "\n\n";
  } else {
    o << "1. Cache-hit path: no result\n\n";
  }

  const json miss = Load(absl::GetFlag(FLAGS_miss));
  if (miss.is_object() && miss.contains("gateway_miss")) {
    auto p = [&](const char* k, const char* q) { return miss[k][q].get<double>(); };
    o << "2. Miss path: GetContact with cache-control: no-cache vs a direct GET /contact/"
      << kIdentifier << " on the sandbox\n";
    o << absl::StrFormat(
        "   sequential (one call at a time), %d calls of each kind in alternating blocks of %d; "
        "sandbox\n   without rate limits; keep-alive connections throughout\n",
        miss["calls"].get<int>(), miss["block"].get<int>());
    o << absl::StrFormat("   %-38s %9s %9s %9s\n", "", "p50", "p99", "mean");
    auto row = [&](const std::string& label, const char* k) {
      if (!miss.contains(k)) return;
      o << absl::StrFormat("   %-38s %9s %9s %9s\n", label, Ms(p(k, "p50_us")), Ms(p(k, "p99_us")),
                           Ms(p(k, "mean_us")));
    };
    auto plus = [](double us) { return (us >= 0 ? "+" : "") + Ms(us); };
    row("direct HTTP GET (libcurl)", "direct");
    row("gateway, no-cache (gRPC)", "gateway_miss");
    if (miss.contains("gateway_internal")) {
      row("  gateway's own time (its call log)", "gateway_internal");
    }
    o << absl::StrFormat("   %-38s %9s %9s %9s\n", "ADDED BY THE GATEWAY (miss - direct)",
                         plus(p("gateway_miss", "p50_us") - p("direct", "p50_us")),
                         plus(p("gateway_miss", "p99_us") - p("direct", "p99_us")),
                         plus(p("gateway_miss", "mean_us") - p("direct", "mean_us")));
    o << "   where it goes (means):\n";
    if (miss.contains("bare")) {
      row("  bare gRPC server (a gRPC round trip)", "bare");
    }
    row("  gateway, cache hit", "gateway_hit");
    if (miss.contains("direct_server_core")) {
      row("  direct GET from the server's core", "direct_server_core");
      o << "     (the gateway's own upstream request goes from the server's core to the "
           "sandbox on the\n      load core, like this one; the direct GET above never leaves "
           "the load core)\n";
    }
    if (miss.contains("bare")) {
      o << absl::StrFormat(
          "   => gRPC round trip %s + gateway's own per-call work %s + upstream path beyond the "
          "HTTP\n      call itself (limiter, threads, JSON->proto) %s\n",
          Ms(p("bare", "mean_us")), plus(p("gateway_hit", "mean_us") - p("bare", "mean_us")),
          plus(p("gateway_miss", "mean_us") - p("gateway_hit", "mean_us") -
               p("direct", "mean_us")));
    }
    o << "   errors: gateway " << miss["gateway_miss_errors"] << ", direct "
      << miss["direct_errors"] << "; upstream requests " << miss["upstream_requests"]
      << " (expected " << miss["expected_upstream_requests"]
      << ": every no-cache call reached the sandbox)\n\n";
  } else {
    o << "2. Miss path: no result\n\n";
  }

  const json budget = Load(absl::GetFlag(FLAGS_budget));
  if (budget.is_object() && budget.contains("upstream_requests")) {
    const int limit = budget["limit"].get<int>();
    o << absl::StrFormat(
        "3. Budget: %d gateway replicas + redis-server + sandbox (rate limits on), GetContact "
        "no-cache,\n   bucket limit %d/s, offered %.0f/s (%.0fx) for %.0f s, deadline %.0f ms, "
        "3 callers\n",
        budget["replicas"].get<int>(), limit, budget["offered_rate"].get<double>(),
        budget["offered_rate"].get<double>() / limit, budget["duration_s"].get<double>(),
        budget["deadline_ms"].get<double>());
    const int max_window = budget["max_per_second_window"].get<int>();
    o << absl::StrFormat(
        "   upstream budget use:            %.1f%% of %d/s  (%d requests in %.2f s, first to "
        "last arrival)\n",
        budget["budget_use"].get<double>() * 100, limit, budget["upstream_requests"].get<int>(),
        budget["busy_span_s"].get<double>());
    o << absl::StrFormat("   largest sliding 1 s window:     %d requests (limit %d: %s)\n",
                         max_window, limit, max_window <= limit ? "within" : "OVER");
    o << absl::StrFormat("   upstream 429s:                  %d (of %d upstream requests)\n",
                         budget["upstream_429"].get<int>(), budget["upstream_requests"].get<int>());
    // Issue 10's figures, against the limiter before reservations (main at 08c9dfa: one
    // script call per token asked, by every replica, 3.98 per admitted call; 91.6% use).
    const double use = budget["budget_use"].get<double>();
    const bool clean = budget["upstream_429"].get<int>() == 0 && max_window <= limit;
    o << absl::StrFormat(
        "   budget use, 10x overload, 3 replicas, 0 upstream 429s: %.1f%% (before 91.6%%, "
        "target >= 97%% with 0 429s and no second over the limit; ratio to before %.3f): %s\n",
        use * 100, use / 0.916, Verdict(use >= 0.97 && clean));
    const int64_t commands = budget.value("limiter_commands", int64_t{-1});
    const int admitted = budget["upstream_requests"].get<int>();
    if (commands >= 0 && admitted > 0) {
      const double per_call = static_cast<double>(commands) / admitted;
      o << absl::StrFormat(
          "   Redis limiter commands per admitted call, 3 replicas, 10x overload: %.2f (%lld "
          "script calls / %d admitted; before 3.98, target <= 1.5; ratio to before %.3f): %s\n",
          per_call, static_cast<long long>(commands), admitted, per_call / 3.98,
          Verdict(per_call <= 1.5));
    }
    o << absl::StrFormat(
        "   callers saw: %d OK, %d RESOURCE_EXHAUSTED (shed with RetryInfo), %d "
        "DEADLINE_EXCEEDED, %d other\n",
        budget["ok"].get<int>(), budget["resource_exhausted"].get<int>(),
        budget["deadline_exceeded"].get<int>(), budget["other_errors"].get<int>());
    o << absl::StrFormat("   admitted calls' latency (queueing included): p50 %s, p99 %s\n",
                         Ms(budget["ok_latency"]["p50_us"].get<double>()),
                         Ms(budget["ok_latency"]["p99_us"].get<double>()));
  } else {
    o << "3. Budget: no result\n";
  }
  const json coalesce = Load(absl::GetFlag(FLAGS_coalesce));
  if (coalesce.is_object() && coalesce.contains("upstream_requests")) {
    const int upstream = coalesce["upstream_requests"].get<int>();
    const int calls = coalesce["calls"].get<int>();
    const bool all_ok = coalesce["ok"].get<int>() == calls && coalesce["same_reply"].get<int>() == calls;
    o << absl::StrFormat(
        "\n4. Coalescing: %d gateway replicas + redis-server + sandbox (no rate limits, 200 ms "
        "upstream delay)\n",
        coalesce["replicas"].get<int>());
    o << absl::StrFormat(
        "   upstream requests for %d concurrent identical cold reads over %d replicas: %d "
        "(before 3, target 1; ratio to before %.3f): %s\n",
        calls, coalesce["replicas"].get<int>(), upstream, upstream / 3.0,
        Verdict(upstream == 1 && all_ok));
    o << absl::StrFormat("   callers saw: %d OK, %d with the same reply bytes%s\n",
                         coalesce["ok"].get<int>(), coalesce["same_reply"].get<int>(),
                         coalesce.contains("error_example")
                             ? ", first error: " + coalesce["error_example"].get<std::string>()
                             : std::string());
  } else {
    o << "\n4. Coalescing: no result\n";
  }
  o << "\n==== Issue 10's figures (each against its baseline from this run):\n\n" << SummaryTable();
  std::cout << o.str() << std::flush;
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) std::ofstream(out) << o.str();
  return 0;
}

}  // namespace
}  // namespace gateway::bench

int main(int argc, char** argv) {
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC's included) runs deadlock
  // detection; the load generator should cost as little as it can.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string mode = positional.size() > 1 ? positional[1] : "";
  curl_global_init(CURL_GLOBAL_DEFAULT);
  namespace b = gateway::bench;
  if (mode == "fetch") return b::Fetch();
  if (mode == "hit") return b::Hit();
  if (mode == "miss") return b::Miss();
  if (mode == "budget") return b::Budget();
  if (mode == "coalesce") return b::Coalesce();
  if (mode == "report") return b::Report();
  std::cerr << "usage: loadgen fetch|hit|miss|budget|coalesce|report --flags (see bench/loadgen.cc)\n";
  return 1;
}
