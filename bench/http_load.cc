// http_load: an open-loop (fixed-rate) HTTP/1.1 load client for the agent's
// HTTP interfaces, because Debian's wrk has no fixed-rate mode (wrk2's -R)
// and its Lua pacing fires in millisecond bursts. Requests are sent on a
// schedule (rate R, evenly spaced) over C keep-alive connections; latency
// counts from the scheduled send time to the last byte of the answer, so a
// stalled server shows up as latency (no coordinated omission).
//
// Each --kind is run for --seconds in turn, in the order given, each after a
// one-second warm-up; run the baseline kind (`healthz`: the same server and
// connection handling, no decision) beside the decision kinds to see what
// the decision adds.
//
// Kinds (the healthcare example's routes; TLS facts are sent as a trusted
// nginx would, so start the agent with --trusted-proxy 127.0.0.1/32):
//   healthz      GET /healthz (baseline: no decision)
//   auth-allow   /v1/auth-request for GET /v1/health over TLS 1.3 (allow, 200)
//   auth-deny    /v1/auth-request for GET /v1/patients/p-anna/records
//                without a token (deny, 401 with challenges)
//   check-allow  POST /v1/check, the JSON request of GET /v1/health (200)
//   check-deny   POST /v1/check, GET /v1/patients/p-anna without a token
//
// usage: http_load --target HOST:PORT [--rate 5000] [--seconds 10]
//                  [--connections 8] [--kinds healthz,auth-allow,...] [--json]
// Prints, per kind: sent, answered, errors (wrong status or connection
// failure), achieved rate, p50/p90/p99/p99.9/max latency in microseconds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Kind {
  const char* name;
  std::string request;
  int expect_status;
};

std::string Get(const std::string& path, const std::string& extra) {
  return "GET " + path + " HTTP/1.1\r\nHost: agent\r\n" + extra + "\r\n";
}

std::string Post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::vector<Kind> AllKinds() {
  const std::string tls =
      "X-Vakt-TLS-Version: TLSv1.3\r\nX-Vakt-TLS-Cipher: TLS_AES_128_GCM_SHA256\r\n";
  const std::string fwd_host = "X-Forwarded-Host: api.example.no\r\n";
  return {
      {"healthz", Get("/healthz", ""), 200},
      {"auth-allow",
       Get("/v1/auth-request",
           "X-Original-Method: GET\r\nX-Original-URI: /v1/health\r\n" + fwd_host + tls),
       200},
      {"auth-deny",
       Get("/v1/auth-request", "X-Original-Method: GET\r\nX-Original-URI: "
                               "/v1/patients/p-anna/records\r\n" +
                                   fwd_host + tls),
       401},
      {"check-allow",
       Post("/v1/check",
            R"({"method":"GET","path":"/v1/health","headers":{"host":"api.example.no"},)"
            R"("tls":{"version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256"}})"),
       200},
      {"check-deny",
       Post("/v1/check",
            R"({"method":"GET","path":"/v1/patients/p-anna","headers":{"host":"api.example.no"},)"
            R"("tls":{"version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256"}})"),
       200},  // /v1/check answers 200 with the deny inside
  };
}

struct Conn {
  int fd = -1;
  bool busy = false;
  Clock::time_point intended;
  std::string in;
};

int Connect(const sockaddr_in& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 2000) != 1) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Bytes of one complete response at the front of `in`, or 0 if incomplete;
// *status receives its status code. Content-Length framing only (the agent
// always sends it).
size_t CompleteResponse(const std::string& in, int* status) {
  size_t head = in.find("\r\n\r\n");
  if (head == std::string::npos) return 0;
  if (in.size() < 12) return 0;
  *status = std::atoi(in.c_str() + 9);
  size_t length = 0;
  size_t cl = in.find("Content-Length: ");
  if (cl == std::string::npos || cl > head) cl = in.find("content-length: ");
  if (cl != std::string::npos && cl < head) length = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
  size_t total = head + 4 + length;
  return in.size() >= total ? total : 0;
}

struct Result {
  uint64_t sent = 0, answered = 0, errors = 0;
  double seconds = 0;
  std::vector<uint32_t> micros;  // latency per answered request (0.1 us units)
};

Result RunKind(const sockaddr_in& addr, const Kind& kind, int rate, double seconds,
               int connections) {
  Result r;
  std::vector<Conn> conns(static_cast<size_t>(connections));
  for (auto& c : conns) {
    c.fd = Connect(addr);
    if (c.fd < 0) {
      std::fprintf(stderr, "cannot connect\n");
      std::exit(1);
    }
  }
  const auto interval = std::chrono::nanoseconds(1'000'000'000LL / rate);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
  auto next = start;
  std::deque<Clock::time_point> backlog;  // scheduled, no free connection yet
  std::vector<pollfd> fds(conns.size());
  char buf[65536];
  while (true) {
    auto now = Clock::now();
    while (next <= now && next < end) {
      backlog.push_back(next);
      next += interval;
    }
    for (auto& c : conns) {
      if (backlog.empty()) break;
      if (c.busy || c.fd < 0) continue;
      c.intended = backlog.front();
      backlog.pop_front();
      ssize_t n = ::send(c.fd, kind.request.data(), kind.request.size(), MSG_NOSIGNAL);
      ++r.sent;
      if (n != static_cast<ssize_t>(kind.request.size())) {
        ++r.errors;
        ::close(c.fd);
        c.fd = Connect(addr);
        continue;
      }
      c.busy = true;
    }
    bool any_busy = false;
    for (size_t i = 0; i < conns.size(); ++i) {
      fds[i] = {conns[i].fd, static_cast<short>(conns[i].busy ? POLLIN : 0), 0};
      any_busy |= conns[i].busy;
    }
    if (!any_busy && backlog.empty() && next >= end) break;
    int wait_ms = 0;
    if (backlog.empty()) {
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
      wait_ms = next >= end ? 100 : static_cast<int>(std::max<int64_t>(0, until.count()));
    }
    // Sub-millisecond schedule: spin with a zero timeout when a send is due
    // within a millisecond.
    if (::poll(fds.data(), fds.size(), wait_ms) <= 0) continue;
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n <= 0) {
        if (c.busy) ++r.errors;
        c.busy = false;
        ::close(c.fd);
        c.fd = Connect(addr);
        c.in.clear();
        continue;
      }
      c.in.append(buf, static_cast<size_t>(n));
      int status = 0;
      size_t used = CompleteResponse(c.in, &status);
      if (used == 0) continue;
      auto done = Clock::now();
      c.in.erase(0, used);
      c.busy = false;
      ++r.answered;
      if (status != kind.expect_status) ++r.errors;
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(done - c.intended).count();
      r.micros.push_back(static_cast<uint32_t>(std::min<int64_t>(ns / 100, UINT32_MAX)));
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  return r;
}

double Pct(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i] / 10.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, kinds = "healthz,auth-allow,auth-deny,check-allow,check-deny";
  int rate = 5000, connections = 8;
  double seconds = 10;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--target") target = value();
    else if (a == "--rate") rate = std::atoi(value().c_str());
    else if (a == "--seconds") seconds = std::atof(value().c_str());
    else if (a == "--connections") connections = std::atoi(value().c_str());
    else if (a == "--kinds") kinds = value();
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr,
                   "usage: http_load --target HOST:PORT [--rate R] [--seconds S] "
                   "[--connections C] [--kinds k1,k2,...] [--json]\n");
      return 2;
    }
  }
  size_t colon = target.rfind(':');
  if (target.empty() || colon == std::string::npos || rate < 1 || rate > 1000000 ||
      seconds <= 0 || connections < 1 || connections > 1024) {
    std::fprintf(stderr, "http_load: --target HOST:PORT and sane --rate/--seconds/--connections\n");
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "http_load: --target must be an IPv4 literal and a port\n");
    return 2;
  }
  std::vector<Kind> all = AllKinds();
  int failures = 0;
  size_t pos = 0;
  if (!json) {
    std::printf("%-12s %9s %9s %7s %9s %9s %9s %9s %9s %9s\n", "kind", "sent", "answered",
                "errors", "rate/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
  }
  while (pos <= kinds.size()) {
    size_t comma = kinds.find(',', pos);
    std::string name = kinds.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? kinds.size() + 1 : comma + 1;
    const Kind* kind = nullptr;
    for (const Kind& k : all) {
      if (name == k.name) kind = &k;
    }
    if (!kind) {
      std::fprintf(stderr, "http_load: unknown kind `%s`\n", name.c_str());
      return 2;
    }
    RunKind(addr, *kind, rate, 1.0, connections);  // warm-up
    Result r = RunKind(addr, *kind, rate, seconds, connections);
    failures += r.errors > 0;
    double achieved = static_cast<double>(r.answered) / r.seconds;
    std::vector<uint32_t>& m = r.micros;
    double p50 = Pct(m, 0.5), p90 = Pct(m, 0.9), p99 = Pct(m, 0.99), p999 = Pct(m, 0.999);
    double mx = m.empty() ? 0 : *std::max_element(m.begin(), m.end()) / 10.0;
    if (json) {
      std::printf("{\"kind\":\"%s\",\"rate\":%d,\"sent\":%llu,\"answered\":%llu,\"errors\":%llu,"
                  "\"achieved\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
                  "\"p999_us\":%.1f,\"max_us\":%.1f}\n",
                  kind->name, rate, static_cast<unsigned long long>(r.sent),
                  static_cast<unsigned long long>(r.answered),
                  static_cast<unsigned long long>(r.errors), achieved, p50, p90, p99, p999, mx);
    } else {
      std::printf("%-12s %9llu %9llu %7llu %9.0f %9.1f %9.1f %9.1f %9.1f %9.1f\n", kind->name,
                  static_cast<unsigned long long>(r.sent),
                  static_cast<unsigned long long>(r.answered),
                  static_cast<unsigned long long>(r.errors), achieved, p50, p90, p99, p999, mx);
    }
  }
  return failures == 0 ? 0 : 1;
}
