// HTTP/1.1 client of the enforcing proxy (see upstream.h): POSIX sockets
// with poll() deadlines, Beast's response parser with limits.
#include "agent/upstream.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "bytecode/request.h"

namespace vakt::agent {

namespace http = boost::beast::http;

namespace {

using Clock = std::chrono::steady_clock;

// A header name or value that could split the request is refused.
bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits until `fd` is ready for `events` or the deadline passes.
Status WaitFor(int fd, short events, Clock::time_point deadline, const char* what) {
  while (true) {
    int ms = RemainingMs(deadline);
    if (ms == 0) return IoError(std::string("upstream timed out while ") + what);
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return Status::Ok();
    if (r == 0) return IoError(std::string("upstream timed out while ") + what);
    if (errno != EINTR) return IoError(std::string("poll: ") + std::strerror(errno));
  }
}

}  // namespace

bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kHop[] = {
      "connection", "keep-alive",        "proxy-connection", "te",      "trailer",
      "upgrade",    "transfer-encoding", "proxy-authenticate"};
  for (std::string_view h : kHop) {
    if (bytecode::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

Result<UpstreamClient> UpstreamClient::Make(UpstreamOptions options) {
  std::string_view url = options.url;
  if (!url.starts_with("http://")) {
    return InvalidArgument("upstream `" + options.url + "`: only http://host:port is supported");
  }
  std::string_view hostport = url.substr(7);
  if (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
  size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == hostport.size() ||
      hostport.find('/') != std::string_view::npos) {
    return InvalidArgument("upstream `" + options.url + "`: want http://host:port");
  }
  std::string host(hostport.substr(0, colon)), port(hostport.substr(colon + 1));
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgument("upstream `" + options.url + "`: bad port");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (options.connect_timeout_ms < 1 || options.response_timeout_ms < 1) {
    return InvalidArgument("upstream timeouts must be positive");
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return IoError("upstream `" + options.url + "`: " + ::gai_strerror(rc));
  }
  UpstreamClient c;
  c.addr_.assign(reinterpret_cast<const uint8_t*>(res->ai_addr),
                 reinterpret_cast<const uint8_t*>(res->ai_addr) + res->ai_addrlen);
  c.addr_len_ = static_cast<uint32_t>(res->ai_addrlen);
  ::freeaddrinfo(res);
  c.host_header_ = std::string(hostport);
  c.options_ = std::move(options);
  return c;
}

Result<UpstreamResponse> UpstreamClient::RoundTrip(
    std::string_view method, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::string_view body) const {
  // The request: our Host, the caller's end-to-end headers, our framing.
  std::string out;
  out.reserve(256 + body.size());
  if (!SafeHeaderText(method) || !SafeHeaderText(target) || method.empty() || target.empty() ||
      target.find(' ') != std::string_view::npos) {
    return InvalidArgument("request line cannot be forwarded");
  }
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  out.append(host_header_).append("\r\n");
  for (const auto& [name, value] : headers) {
    if (IsHopByHop(name) || bytecode::EqualsIgnoreCase(name, "host") || bytecode::EqualsIgnoreCase(name, "content-length")) {
      continue;
    }
    if (name.empty() || !SafeHeaderText(name) || !SafeHeaderText(value)) {
      return InvalidArgument("a header cannot be forwarded");
    }
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("Connection: close\r\n\r\n");
  out.append(body);

  const auto* sa = reinterpret_cast<const sockaddr*>(addr_.data());
  Fd fd(::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return IoError(std::string("socket: ") + std::strerror(errno));
  auto connect_deadline = Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  if (::connect(fd.get(), sa, addr_len_) != 0) {
    if (errno != EINPROGRESS) {
      return IoError("connect to upstream " + host_header_ + ": " + std::strerror(errno));
    }
    if (Status st = WaitFor(fd.get(), POLLOUT, connect_deadline, "connecting"); !st.ok()) {
      return st;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return IoError("connect to upstream " + host_header_ + ": " + std::strerror(err));
  }

  auto deadline = Clock::now() + std::chrono::milliseconds(options_.response_timeout_ms);
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (Status st = WaitFor(fd.get(), POLLOUT, deadline, "sending"); !st.ok()) return st;
      continue;
    }
    return IoError(std::string("send to upstream: ") + std::strerror(errno));
  }

  http::response_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options_.max_response_header_bytes));
  parser.body_limit(options_.max_response_body_bytes);
  parser.eager(true);
  if (bytecode::EqualsIgnoreCase(method, "head")) parser.skip(true);
  std::string pending;  // received, not yet consumed by the parser
  char buf[16384];
  bool eof = false;
  // Beast 1.74's parser does not apply body_limit to a Content-Length body
  // taken in one put(), so the limits are also checked here: the declared
  // length once the header is parsed, and every byte received.
  const size_t max_total = options_.max_response_header_bytes + options_.max_response_body_bytes;
  size_t received = 0;
  while (!parser.is_done()) {
    if (!eof) {
      if (Status st = WaitFor(fd.get(), POLLIN, deadline, "reading the response"); !st.ok()) {
        return st;
      }
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return IoError(std::string("receive from upstream: ") + std::strerror(errno));
      }
      if (n == 0) {
        eof = true;
      } else {
        received += static_cast<size_t>(n);
        if (received > max_total) {
          return ResourceExhausted("upstream response over " + std::to_string(max_total) +
                                   " bytes");
        }
        pending.append(buf, static_cast<size_t>(n));
      }
    }
    boost::beast::error_code ec;
    if (!pending.empty()) {
      size_t used = parser.put(boost::asio::buffer(pending.data(), pending.size()), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
        if (!eof) continue;
      }
    }
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return ResourceExhausted("upstream response over the limit: " + ec.message());
    }
    if (ec) return Corruption("malformed upstream response: " + ec.message());
    if (parser.is_header_done() && parser.content_length() &&
        *parser.content_length() > options_.max_response_body_bytes) {
      return ResourceExhausted("upstream response body of " +
                               std::to_string(*parser.content_length()) + " bytes is over " +
                               std::to_string(options_.max_response_body_bytes));
    }
    if (eof && !parser.is_done()) {
      parser.put_eof(ec);
      if (ec) return Corruption("upstream closed the connection mid-response: " + ec.message());
      break;
    }
  }

  const auto& res = parser.get();
  UpstreamResponse r;
  r.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string_view name(field.name_string().data(), field.name_string().size());
    if (IsHopByHop(name) || bytecode::EqualsIgnoreCase(name, "content-length")) continue;
    r.headers.emplace_back(std::string(name),
                           std::string(field.value().data(), field.value().size()));
  }
  r.body = res.body();
  return r;
}

}  // namespace vakt::agent
