#!/usr/bin/python3
"""max_inflight_calls under about twice the server's capacity (open-loop
Score from Debian's python3-grpcio; the driver is bench/overload.py, run
here short; checked: the unbounded server answered under 1/1.3 of the
offered rate, and a capacity estimate that came out low on a loaded
machine is re-measured from what the server answered): past the bound a call gets RESOURCE_EXHAUSTED with a message
and /metrics counts it, without waiting behind the calls queued on the
worker (refusals' median under half the accepted calls' median); the accepted
calls' p99 stays well under that of
the same load on a server without a bound (whose queue, and p99, grow for
as long as the overload lasts); the bounded server's RSS grows by under
24 MiB (or half the unbounded growth, for slow sanitizer builds).
Every call ends OK or RESOURCE_EXHAUSTED, and both servers exit 0."""
import os
import sys
import tempfile
import unittest

ARGS = None


class OverloadTest(unittest.TestCase):
    def test_bound_keeps_latency_and_memory(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "bench"))
        import overload
        with tempfile.TemporaryDirectory() as d:
            r = overload.run(ARGS.bin, ARGS.proto_dir, d, seconds=3.0, rate=2.0, bound=8,
                             candidates=1000, calibrate=1.5)
        print("overload:", r)
        b, u = r["bounded"], r["unbounded"]
        # the premise: the offered load was above what the unbounded server
        # could answer (a capacity estimate that came out low under load is
        # re-measured from the run itself; bench/overload.py run())
        self.assertTrue(r["overloaded"], r["calibrations"])
        self.assertEqual((r["bounded_exit"], r["unbounded_exit"]), (0, 0))
        self.assertEqual(b["other_errors"], {})
        self.assertEqual(u["other_errors"], {})
        self.assertGreater(b["refused"], 0)
        self.assertGreater(b["accepted"], 0)
        self.assertEqual(u["refused"], 0)
        self.assertEqual(b["metrics_refused"], b["refused"])
        self.assertIn("server overloaded: max_inflight_calls (8)", b["refused_message"])
        # relative, not absolute, so a loaded machine does not fail it
        self.assertLess(b["accepted_p99_ms"] * 1.5, u["accepted_p99_ms"])
        # a refusal is answered by the acceptor thread as the call arrives,
        # not behind the calls queued on the worker (which accepted calls
        # wait behind; before the acceptor thread a refusal waited there
        # too: p99 277 vs 304 ms accepted). Medians, relative: the p99s
        # move with the load of the shared machine (refusals' p99 was 7 to
        # 151 ms in runs where their p50 was 0.5 ms)
        self.assertLess(b["refused_p50_ms"], 0.5 * b["accepted_p50_ms"])
        grew, grew_unbounded = (b["rss_peak_mib"] - b["rss_start_mib"],
                                u["rss_peak_mib"] - u["rss_start_mib"])
        self.assertLess(grew, max(24.0, 0.5 * grew_unbounded))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
