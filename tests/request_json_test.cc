// Tests of the request/response JSON reader (bytecode/request_json.h):
// complete documents and every error branch.
#include "bytecode/request_json.h"

#include <gtest/gtest.h>

#include <string>

namespace vakt::bytecode {
namespace {

std::string ErrorOf(std::string_view json) {
  auto r = ParseRequestJson(json);
  EXPECT_FALSE(r.ok()) << json;
  return r.ok() ? "" : r.status().message();
}

std::string ResponseErrorOf(std::string_view json) {
  auto r = ParseResponseJson(json);
  EXPECT_FALSE(r.ok()) << json;
  return r.ok() ? "" : r.status().message();
}

TEST(RequestJson, FullRequest) {
  auto r = ParseRequestJson(R"({
    "method": "POST",
    "path": "/v1/records/r-1?x=1",
    "headers": {"Authorization": "Bearer t", "X-Multi": ["a", "b"], "X-None": []},
    "body": "raw text",
    "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "client_cert": "PEM"},
    "time": 1700000000
  })");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->target, "/v1/records/r-1?x=1");
  ASSERT_EQ(r->headers.size(), 3u);
  EXPECT_EQ(r->headers[0], (std::pair<std::string, std::string>{"Authorization", "Bearer t"}));
  EXPECT_EQ(r->headers[1], (std::pair<std::string, std::string>{"X-Multi", "a"}));
  EXPECT_EQ(r->headers[2], (std::pair<std::string, std::string>{"X-Multi", "b"}));
  EXPECT_EQ(r->body, "raw text");
  EXPECT_EQ(r->tls_version, "TLSv1.3");
  EXPECT_EQ(r->tls_cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(r->client_cert, "PEM");
  EXPECT_EQ(r->time, 1700000000);
  EXPECT_TRUE(r->has_time);

  HttpRequest v = r->View();
  EXPECT_EQ(v.method, "POST");
  EXPECT_EQ(v.target, "/v1/records/r-1?x=1");
  ASSERT_EQ(v.headers.size(), 3u);
  EXPECT_EQ(v.headers[2].name, "X-Multi");
  EXPECT_EQ(v.headers[2].value, "b");
  EXPECT_EQ(v.body, "raw text");
  EXPECT_EQ(v.tls.version, "TLSv1.3");
  EXPECT_EQ(v.tls.client_cert_pem, "PEM");
  EXPECT_EQ(v.time, 1700000000);
}

TEST(RequestJson, MinimalRequest) {
  auto r = ParseRequestJson(R"({"method":"GET","path":"/"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->headers.empty());
  EXPECT_EQ(r->body, "");
  EXPECT_FALSE(r->has_time);
  EXPECT_EQ(r->time, 0);
  EXPECT_EQ(r->View().headers.size(), 0u);
}

TEST(RequestJson, JsonBodyIsReserialised) {
  auto r = ParseRequestJson(R"({"method":"POST","path":"/","body": {"a" : [1, 2, {"b": "c"}]}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, R"({"a":[1,2,{"b":"c"}]})");
  auto a = ParseRequestJson(R"({"method":"POST","path":"/","body": [ true , null ]})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->body, "[true,null]");
}

TEST(RequestJson, NegativeTime) {
  auto r = ParseRequestJson(R"({"method":"GET","path":"/","time":-5})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->time, -5);
}

TEST(RequestJson, Errors) {
  EXPECT_EQ(ErrorOf(R"({"path":"/"})"), "request: `method` is required");
  EXPECT_EQ(ErrorOf(R"({"method":"GET"})"), "request: `path` is required");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","hdrs":{}})"),
            "request: unknown key `hdrs` (expected method, path, headers, body, tls or time)");
  EXPECT_EQ(ErrorOf(R"({"method":1,"path":"/"})"),
            "request: `method` is a number, expected a string");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":null})"),
            "request: `path` is null, expected a string");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","headers":[]})"),
            "request: `headers` is an array, expected an object");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","headers":{"a":1}})"),
            "request: header `a` is a number, expected a string or an array of strings");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","headers":{"a":["x", 2]}})"),
            "request: header `a` has a value that is a number, expected a string");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","body":12})"),
            "request: `body` is a number, expected a string, an object or an array");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","time":"now"})"),
            "request: `time` is a string, expected an integer");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","time":1.5})"),
            "request: `time` is a number, expected an integer");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","time":18446744073709551615})"),
            "request: `time` is out of range");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","tls":"TLSv1.3"})"),
            "request: `tls` is a string, expected an object");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","tls":{"version":1}})"),
            "request tls: `version` is a number, expected a string");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","tls":{"cert":"x"}})"),
            "request tls: unknown key `cert` (expected version, cipher or client_cert)");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/","tls":{"cipher":"a","cipher":"b"}})"),
            "request tls: duplicate key `cipher`");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","method":"POST","path":"/"})"),
            "request: duplicate key `method`");
  EXPECT_EQ(ErrorOf(R"(["method","GET"])"), "request: expected a JSON object, got an array");
  EXPECT_EQ(ErrorOf("42"), "request: expected a JSON object, got a number");
  EXPECT_EQ(ErrorOf(R"({"method":"GET","path":"/")").rfind("request: malformed JSON: ", 0), 0u);
  EXPECT_EQ(ErrorOf("").rfind("request: malformed JSON: ", 0), 0u);
  EXPECT_EQ(ErrorOf("{\"method\":\"G\xFF\",\"path\":\"/\"}").rfind("request: malformed JSON", 0),
            0u);
}

TEST(RequestJson, TooBig) {
  std::string big = R"({"method":"GET","path":"/","body":")";
  big += std::string(kMaxRequestJsonBytes, 'x');
  big += "\"}";
  auto r = ParseRequestJson(big);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("over the limit"), std::string::npos);
  auto s = ParseResponseJson(big);
  EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted);
}

TEST(ResponseJson, Full) {
  auto r = ParseResponseJson(
      R"({"status": 201, "headers": {"Content-Type": "application/json", "Set-Cookie": ["a", "b"]},
          "body": {"id": "r-1"}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 201);
  ASSERT_EQ(r->headers.size(), 3u);
  EXPECT_EQ(r->body, R"({"id":"r-1"})");
  HttpResponse v = r->View();
  EXPECT_EQ(v.status, 201);
  ASSERT_EQ(v.headers.size(), 3u);
  EXPECT_EQ(v.headers[0].name, "Content-Type");
  EXPECT_EQ(v.headers[2].value, "b");
  EXPECT_EQ(v.body, R"({"id":"r-1"})");
}

TEST(ResponseJson, Errors) {
  EXPECT_EQ(ResponseErrorOf(R"({"body":""})"), "response: `status` is required");
  EXPECT_EQ(ResponseErrorOf(R"({"status":99})"), "response: `status` 99 is outside 100..599");
  EXPECT_EQ(ResponseErrorOf(R"({"status":600})"), "response: `status` 600 is outside 100..599");
  EXPECT_EQ(ResponseErrorOf(R"({"status":"200"})"),
            "response: `status` is a string, expected an integer");
  EXPECT_EQ(ResponseErrorOf(R"({"status":200,"time":1})"),
            "response: unknown key `time` (expected status, headers or body)");
  EXPECT_EQ(ResponseErrorOf(R"({"status":200,"headers":{"a":[null]}})"),
            "response: header `a` has a value that is null, expected a string");
  EXPECT_EQ(ResponseErrorOf(R"({"status":200,"body":false})"),
            "response: `body` is a boolean, expected a string, an object or an array");
  EXPECT_EQ(ResponseErrorOf("null"), "response: expected a JSON object, got null");
  EXPECT_EQ(ResponseErrorOf("{").rfind("response: malformed JSON: ", 0), 0u);
  EXPECT_TRUE(ParseResponseJson(R"({"status":100})").ok());
  EXPECT_TRUE(ParseResponseJson(R"({"status":599})").ok());
}

}  // namespace
}  // namespace vakt::bytecode
