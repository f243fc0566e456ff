#!/usr/bin/python3
"""TLS and mutual TLS on the gRPC port, HTTPS on the metrics port, and
certificate rotation, against the real server from Debian's python3-grpcio.
Certificates are made at test time with the openssl command: two CAs, a
server certificate from each (for 127.0.0.1 and localhost), a client
certificate from each.

Checks: a TLS call succeeds and a plaintext one fails; a client trusting
the other CA fails; with a client CA and tls_require_client_cert, a client
without a certificate or with one from the other CA fails and one from the
CA succeeds; after the files are replaced and SIGHUP (or Admin/Reload) new
connections see the new certificate while an open connection keeps
working; bad files on a reload change nothing (Reload answers
FAILED_PRECONDITION); /metrics answers HTTPS and not plain HTTP, and a
SIGHUP rotates its certificate the same way; a token
file without TLS on a non-loopback address logs a warning.
"""
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ARGS = None
TOKEN = "adm-token-0123456789abcdef"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", os.path.join(d, name + ".key"), "-out", os.path.join(d, name + ".pem"),
            "-days", "2", "-subj", "/CN=moerec test " + name)


def make_cert(d, name, ca, ext):
    key, csr = os.path.join(d, name + ".key"), os.path.join(d, name + ".csr")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    extfile = os.path.join(d, name + ".ext")
    with open(extfile, "w") as f:
        f.write(ext + "\n")
    openssl("x509", "-req", "-in", csr, "-CA", os.path.join(d, ca + ".pem"), "-CAkey",
            os.path.join(d, ca + ".key"), "-CAcreateserial", "-days", "2", "-out",
            os.path.join(d, name + ".pem"), "-extfile", extfile)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def replace(dst, src):
    """Swap a file's contents in one rename, as a rotation tool would."""
    tmp = dst + ".new"
    with open(tmp, "wb") as f:
        f.write(read(src))
    os.replace(tmp, dst)


class Server:
    def __init__(self, d, name, cfg, extra=()):
        path = os.path.join(d, name + ".json")
        with open(path, "w") as f:
            json.dump(dict({"log_level": "info"}, **cfg), f)
        self.log = os.path.join(d, name + ".log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0",
                                          "--config", path, *extra], stdout=subprocess.PIPE,
                                         stderr=log, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError("server did not start: %r\n%s" % (line, read(self.log)))
        self.target = line[len("listening on "):]
        self.metrics = None
        if "metrics_port" in cfg:
            self.metrics = self.proc.stdout.readline().strip()[len("metrics on "):]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        if rc != 0:  # show why (a sanitizer report goes to the log)
            sys.stderr.write(self.log_text()[-6000:])
        return rc

    def log_text(self):
        return read(self.log).decode()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import health_pb2, health_pb2_grpc, moerec_pb2, moerec_pb2_grpc
        cls.grpc, cls.hpb, cls.hgrpc = grpc, health_pb2, health_pb2_grpc
        cls.pb, cls.pbgrpc = moerec_pb2, moerec_pb2_grpc
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        san = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
        for ca in ("ca1", "ca2"):
            make_ca(d, ca)
        make_cert(d, "server1", "ca1", san)
        make_cert(d, "server2", "ca2", san)
        make_cert(d, "client1", "ca1", "extendedKeyUsage=clientAuth")
        make_cert(d, "client2", "ca2", "extendedKeyUsage=clientAuth")
        # the files the server is configured with (rotation replaces them)
        cls.cert, cls.key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
        replace(cls.cert, os.path.join(d, "server1.pem"))
        replace(cls.key, os.path.join(d, "server1.key"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def tls_cfg(self, **extra):
        return dict({"tls_cert_file": self.cert, "tls_key_file": self.key}, **extra)

    def channel(self, target, ca=None, client=None):
        """A channel with its own connection (no subchannel shared with
        another channel); plaintext when ca is None."""
        opts = [("grpc.use_local_subchannel_pool", 1)]
        if ca is None:
            return self.grpc.insecure_channel(target, options=opts)
        key = cert = None
        if client:
            key = read(os.path.join(self.d, client + ".key"))
            cert = read(os.path.join(self.d, client + ".pem"))
        creds = self.grpc.ssl_channel_credentials(read(os.path.join(self.d, ca + ".pem")), key,
                                                  cert)
        return self.grpc.secure_channel(target, creds, options=opts)

    def check(self, ch):
        """health Check's status code on ch (OK when the TLS handshake passed)."""
        try:
            # generous: a TLS handshake with a ThreadSanitizer server on a
            # loaded machine takes seconds; a refused handshake fails at once
            self.hgrpc.HealthStub(ch).Check(self.hpb.HealthCheckRequest(), timeout=30)
            return self.grpc.StatusCode.OK
        except self.grpc.RpcError as e:
            return e.code()

    def test_tls_and_plaintext(self):
        code = self.grpc.StatusCode
        srv = Server(self.d, "tls", self.tls_cfg())
        try:
            with self.channel(srv.target, "ca1") as ch:
                self.assertEqual(self.check(ch), code.OK)
                with self.assertRaises(self.grpc.RpcError) as cm:  # reaches the handler
                    self.pbgrpc.RecommenderStub(ch).GetModelInfo(self.pb.GetModelInfoRequest(),
                                                                 timeout=30)
                self.assertEqual(cm.exception.code(), code.FAILED_PRECONDITION)
            with self.channel(srv.target) as ch:  # plaintext to a TLS port
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
            with self.channel(srv.target, "ca2") as ch:  # a CA that did not sign it
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_mutual_tls(self):
        code = self.grpc.StatusCode
        srv = Server(self.d, "mtls", self.tls_cfg(
            tls_client_ca_file=os.path.join(self.d, "ca1.pem"), tls_require_client_cert=True))
        try:
            with self.channel(srv.target, "ca1", client="client1") as ch:
                self.assertEqual(self.check(ch), code.OK)
            with self.channel(srv.target, "ca1") as ch:  # no client certificate
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
            with self.channel(srv.target, "ca1", client="client2") as ch:  # the other CA's
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_rotation(self):
        code = self.grpc.StatusCode
        d = self.d
        replace(self.cert, os.path.join(d, "server1.pem"))
        replace(self.key, os.path.join(d, "server1.key"))
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write("%s admin\n" % TOKEN)
        srv = Server(d, "rotate", self.tls_cfg(auth_tokens_file=os.path.join(d, "tokens")))
        admin_md = (("authorization", "Bearer " + TOKEN),)
        try:
            old = self.channel(srv.target, "ca1")
            self.assertEqual(self.check(old), code.OK)
            # SIGHUP: the files now hold the certificate of ca2
            replace(self.cert, os.path.join(d, "server2.pem"))
            replace(self.key, os.path.join(d, "server2.key"))
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 30
            while "certificate files re-read" not in srv.log_text() and time.time() < deadline:
                time.sleep(0.02)
            with self.channel(srv.target, "ca2") as ch:
                self.assertEqual(self.check(ch), code.OK)
            with self.channel(srv.target, "ca1") as ch:
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
            self.assertEqual(self.check(old), code.OK)  # the open connection stays

            # bad files: a key that does not match; SIGHUP and Reload refuse them
            replace(self.key, os.path.join(d, "server1.key"))
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 30
            while "does not match" not in srv.log_text() and time.time() < deadline:
                time.sleep(0.02)
            self.assertIn("does not match", srv.log_text())
            with self.channel(srv.target, "ca2") as ch:
                self.assertEqual(self.check(ch), code.OK)
                admin = self.pbgrpc.AdminStub(ch)
                with self.assertRaises(self.grpc.RpcError) as cm:
                    admin.Reload(self.pb.ReloadRequest(), timeout=10, metadata=admin_md)
                self.assertEqual(cm.exception.code(), code.FAILED_PRECONDITION)
                self.assertIn("does not match", cm.exception.details())

                # Admin/Reload: back to the certificate of ca1
                replace(self.cert, os.path.join(d, "server1.pem"))
                admin.Reload(self.pb.ReloadRequest(), timeout=10, metadata=admin_md)
                self.assertEqual(self.check(ch), code.OK)  # this connection stays too
            with self.channel(srv.target, "ca1") as ch:
                self.assertEqual(self.check(ch), code.OK)
            with self.channel(srv.target, "ca2") as ch:
                self.assertEqual(self.check(ch), code.UNAVAILABLE)
            self.assertEqual(self.check(old), code.OK)
            old.close()
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_metrics_https(self):
        srv = Server(self.d, "mhttps", self.tls_cfg(metrics_tls=True, metrics_port=0))
        try:
            self.assertTrue(srv.metrics.startswith("https://127.0.0.1:"), srv.metrics)
            ctx = ssl.create_default_context(cafile=os.path.join(self.d, "ca1.pem"))
            with urllib.request.urlopen(srv.metrics, timeout=10, context=ctx) as r:
                self.assertIn("moerec_up 1", r.read().decode())
            with self.assertRaises((urllib.error.URLError, ConnectionError)):
                urllib.request.urlopen(srv.metrics.replace("https:", "http:"), timeout=10).read()
            bad = ssl.create_default_context(cafile=os.path.join(self.d, "ca2.pem"))
            with self.assertRaises(urllib.error.URLError):
                urllib.request.urlopen(srv.metrics, timeout=10, context=bad)
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_metrics_https_rotation(self):
        """SIGHUP re-reads the pair for /metrics too: a new HTTPS connection
        gets the new certificate, one opened before is still answered."""
        import http.client
        d = self.d
        replace(self.cert, os.path.join(d, "server1.pem"))
        replace(self.key, os.path.join(d, "server1.key"))
        srv = Server(d, "mrotate", self.tls_cfg(metrics_tls=True, metrics_port=0))
        port = int(srv.metrics.split(":")[2].split("/")[0])

        def ctx(ca):
            return ssl.create_default_context(cafile=os.path.join(d, ca + ".pem"))

        def scrape(conn):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            body = r.read().decode()
            self.assertEqual(r.status, 200)
            self.assertIn("moerec_up 1", body)

        def peer_cn(ca):
            """CN of the certificate a new connection trusting ca gets; None when refused."""
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ctx(ca))
            try:
                conn.connect()
                subject = dict(x[0] for x in conn.sock.getpeercert()["subject"])
                scrape(conn)
                return subject["commonName"]
            except (ssl.SSLError, ConnectionError):
                return None
            finally:
                conn.close()

        def rotate(name, n):
            replace(self.cert, os.path.join(d, name + ".pem"))
            replace(self.key, os.path.join(d, name + ".key"))
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 30
            while srv.log_text().count("new /metrics connections get the new certificate") < n \
                    and time.time() < deadline:
                time.sleep(0.02)
            self.assertEqual(srv.log_text().count("new /metrics connections get the new "
                                                  "certificate"), n)
        try:
            self.assertEqual(peer_cn("ca1"), "server1")
            # a connection whose handshake (old certificate) happened before
            # the rotation and whose request comes after it
            old = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ctx("ca1"))
            old.connect()
            rotate("server2", 1)
            self.assertEqual(peer_cn("ca2"), "server2")
            self.assertIsNone(peer_cn("ca1"))  # the old certificate is gone for new connections
            scrape(old)  # the open connection is still answered
            old.close()
            rotate("server1", 2)  # and back, by a second rotation
            self.assertEqual(peer_cn("ca1"), "server1")
            self.assertIsNone(peer_cn("ca2"))
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_tokens_without_tls_warn_off_loopback(self):
        d = self.d
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write("%s admin\n" % TOKEN)
        cfg = {"auth_tokens_file": os.path.join(d, "tokens")}
        srv = Server(d, "warn-lo", cfg)  # 127.0.0.1: no warning
        self.assertEqual(srv.stop(), 0)
        self.assertNotIn("clear text", srv.log_text())
        srv = Server(d, "warn-any", dict(cfg, host="0.0.0.0"))
        self.assertEqual(srv.stop(), 0)
        self.assertIn("bearer tokens will cross the network in clear text", srv.log_text())
        srv = Server(d, "warn-tls", dict(self.tls_cfg(), host="0.0.0.0", **cfg))
        self.assertEqual(srv.stop(), 0)
        self.assertNotIn("clear text", srv.log_text())

    def test_bad_tls_config(self):
        d = self.d
        for cfg, needle, rc in (  # config errors exit 2, unusable files 1
                ({"tls_cert_file": self.cert}, "go together", 2),
                (self.tls_cfg(tls_require_client_cert=True), "needs 'tls_client_ca_file'", 2),
                ({"metrics_tls": True}, "needs 'tls_cert_file'", 2),
                (self.tls_cfg(tls_key_file=os.path.join(d, "client1.key")), "does not match", 1),
                (self.tls_cfg(tls_cert_file=os.path.join(d, "nope.pem")), "cannot open", 1)):
            path = os.path.join(d, "bad.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([ARGS.bin, "serve", "--port", "0", "--config", path],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, rc, (cfg, r.stderr))
            self.assertIn(needle, r.stderr, cfg)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
