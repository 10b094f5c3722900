#!/usr/bin/env python3
"""The demo patient-records service: the upstream that Vakt protects.

A small HTTP/1.1 JSON service (Python 3 standard library only) serving the
patient-records API of examples/healthcare (base path /v1) from the seed data
in data.json beside it. It runs on loopback behind the Vakt agent's enforcing
proxy (scripts/e2e_demo.sh) and, on purpose, TRUSTS NOTHING AND CHECKS
NOTHING ITSELF: no token, no ownership, no schema. Every authorization
decision is the agent's, on the request before it gets here and on the
response before it leaves.

It carries one deliberate Broken Object Level Authorization (BOLA) bug, for
the demo: GET /v1/patients/{pid}/records/{rid} looks the record up by `rid`
only and returns it even when it belongs to another patient. For the record
ids the policy knows (../data/record_patient.json) the policy's `record` rule
refuses a mismatched pair before the request arrives; for an id it does not
know (`r-7`, which data.json has and record_patient.json deliberately lacks,
or any record POSTed after the bundle was built) the bug leaks, and the
policy's response rule `record_owner` withholds the answer (403
access_denied). `--fixed` turns the bug off (the service then answers 404).

Routes:
  GET    /v1/health
  GET    /v1/patients/{id}
  GET    /v1/patients/{id}/records
  GET    /v1/patients/{id}/records/{rid}          (the BOLA bug)
  POST   /v1/patients/{id}/records                (201 and the stored Record)
  DELETE /v1/patients/{id}/records/{rid}          (204)

Every answer is JSON (errors as {"error", "error_description"}), and every
200 satisfies the policy's Patient, Record or RecordList schema. New records
live in memory only. Request bodies are bounded (--max-body-bytes, default
64 KiB; larger: 413, no Content-Length on a body: 411). One log line per
request goes to stderr.

usage:
  records_service.py [--host 127.0.0.1] [--port 0] [--port-file FILE]
                     [--data data.json] [--max-body-bytes N] [--fixed]
With --port 0 the kernel picks a free port; --port-file receives it (written
atomically, the port and a newline) once the service listens.
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import re
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ID = r"[A-Za-z0-9-]{1,64}"
ROUTES = [
    ("GET", re.compile(r"^/v1/health$"), "health"),
    ("GET", re.compile(rf"^/v1/patients/({ID})$"), "get_patient"),
    ("GET", re.compile(rf"^/v1/patients/({ID})/records$"), "list_records"),
    ("GET", re.compile(rf"^/v1/patients/({ID})/records/({ID})$"), "get_record"),
    ("POST", re.compile(rf"^/v1/patients/({ID})/records$"), "create_record"),
    ("DELETE", re.compile(rf"^/v1/patients/({ID})/records/({ID})$"), "delete_record"),
]
RECORD_FIELDS = ("id", "patient_id", "type", "text", "code", "author", "created")


class Store:
    """Patients and records, in memory; thread-safe (one lock)."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            seed = json.load(f)
        self.lock = threading.Lock()
        self.patients = {p["id"]: p for p in seed["patients"]}
        self.records = {r["id"]: r for r in seed["records"]}  # by record id only
        self.next_id = 100

    def patient(self, pid):
        with self.lock:
            return self.patients.get(pid)

    def records_of(self, pid):
        with self.lock:
            return [r for r in self.records.values() if r["patient_id"] == pid]

    def record(self, rid):
        # THE BOLA BUG: the record is found by its id alone; whose it is is
        # never compared with the patient of the path (see get_record).
        with self.lock:
            return self.records.get(rid)

    def add(self, pid, fields, author):
        with self.lock:
            rid = "r-%d" % self.next_id
            self.next_id += 1
            rec = {"id": rid, "patient_id": pid, "author": author,
                   "created": datetime.datetime.now(datetime.timezone.utc)
                   .strftime("%Y-%m-%dT%H:%M:%SZ")}
            rec.update(fields)
            self.records[rid] = rec
            return rec

    def delete(self, pid, rid):
        with self.lock:
            rec = self.records.get(rid)
            if rec is None or rec["patient_id"] != pid:
                return False
            del self.records[rid]
            return True


def token_subject(authorization):
    """The `sub` of the access token, for a new record's author.

    Not verified here: the agent in front verified the token (signature,
    issuer, audience, expiry, sender constraint) before forwarding. Returns
    "unknown" when there is none to read.
    """
    parts = (authorization or "").split(" ", 1)
    if len(parts) != 2 or len(parts[1]) > 16384:
        return "unknown"
    segs = parts[1].strip().split(".")
    if len(segs) != 3:
        return "unknown"
    try:
        pad = "=" * (-len(segs[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(segs[1] + pad))
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else "unknown"
    except (ValueError, AttributeError):
        return "unknown"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the agent's upstream pool
    server_version = "records-service/1"
    sys_version = ""

    # -- plumbing -----------------------------------------------------------

    def send_json(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, code, description):
        self.send_json(status, {"error": code, "error_description": description})

    def read_body(self):
        """The request body, or None after an error answer (411, 413, 400)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self.error(411, "length_required", "send the body with a Content-Length")
            return None
        try:
            n = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            self.close_connection = True
            self.error(400, "invalid_request", "malformed Content-Length")
            return None
        if n < 0 or n > self.server.max_body:
            self.close_connection = True
            self.error(413, "too_large", "the body exceeds %d bytes" % self.server.max_body)
            return None
        return self.rfile.read(n) if n else b""

    def log_message(self, fmt, *args):  # one line per request, to stderr
        sys.stderr.write("records-service %s %s\n" % (self.address_string(), fmt % args))

    def dispatch(self):
        path = self.path.split("?", 1)[0]
        for method, pattern, name in ROUTES:
            m = pattern.match(path)
            if m and method == self.command:
                return getattr(self, name)(*m.groups())
        if any(p.match(path) for _, p, _ in ROUTES):
            return self.error(405, "method_not_allowed", "method not allowed on this path")
        return self.error(404, "not_found", "no such route")

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = dispatch

    # -- routes -------------------------------------------------------------

    def health(self):
        self.send_json(200, {"status": "ok"})

    def get_patient(self, pid):
        p = self.patient(pid)
        if p:
            self.send_json(200, p)

    def list_records(self, pid):
        if self.patient(pid):
            self.send_json(200, [clean(r) for r in self.server.store.records_of(pid)])

    def get_record(self, pid, rid):
        if not self.patient(pid):
            return
        rec = self.server.store.record(rid)
        # BOLA: without --fixed, a record of ANOTHER patient is returned too.
        if rec is None or (self.server.fixed and rec["patient_id"] != pid):
            return self.error(404, "not_found", "no such record")
        self.send_json(200, clean(rec))

    def create_record(self, pid):
        body = self.read_body()
        if body is None:
            return
        if not self.patient(pid):
            return
        try:
            fields = json.loads(body)
        except ValueError:
            return self.error(400, "invalid_request", "the body is not JSON")
        if not isinstance(fields, dict):
            return self.error(400, "invalid_request", "the body is not a JSON object")
        # No validation here either: the agent checked the body against the
        # strict NewRecord schema. Only NewRecord's fields are kept.
        kept = {k: fields[k] for k in ("type", "text", "code") if k in fields}
        rec = self.server.store.add(pid, kept, token_subject(self.headers.get("Authorization")))
        self.send_json(201, clean(rec))

    def delete_record(self, pid, rid):
        if not self.patient(pid):
            return
        if not self.server.store.delete(pid, rid):
            return self.error(404, "not_found", "no such record")
        self.send_json(204)

    def patient(self, pid):
        p = self.server.store.patient(pid)
        if p is None:
            self.error(404, "not_found", "no such patient")
        return p


def clean(rec):
    return {k: rec[k] for k in RECORD_FIELDS if k in rec}


def write_atomically(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="listen port; 0 picks a free one")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--data", default=os.path.join(HERE, "data.json"), help="seed data (JSON)")
    ap.add_argument("--max-body-bytes", type=int, default=65536, help="largest request body")
    ap.add_argument("--fixed", action="store_true", help="without the BOLA bug")
    args = ap.parse_args()

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.store = Store(args.data)
    server.max_body = args.max_body_bytes
    server.fixed = args.fixed
    port = server.server_address[1]
    if args.port_file:
        write_atomically(args.port_file, "%d\n" % port)
    sys.stderr.write("records-service listening on %s:%d%s\n"
                     % (args.host, port, " (BOLA bug fixed)" if args.fixed else ""))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
