# moe_speed — MoE ranker throughput (1 thread) vs PyTorch on the same weights, and vs the sgemm peak
#
# Runs bench_moe_speed (moerec, C) and bench/moe_speed_torch.py (PyTorch,
# torch.set_num_threads(1), eval + no_grad) on the same model directory,
# twice each, alternating, then prints one JSON line with the ratios of
# the best figures. Installs python3-torch with
# apt-get when /usr/bin/python3 lacks it (bench-only dependency).
# Usage: bench/run moe_speed [--seconds S] [--gate dense|topk]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_moe_speed
build=$MOEREC_BUILD
seconds=3.0
gate=dense
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --gate) gate=$2; shift 2 ;;
    *) echo "moe_speed: unknown option $1" >&2; exit 2 ;;
  esac
done
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "moe_speed: installing python3-torch (bench-only)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# Two alternating rounds of each side; every figure is the better of the two
# (on a shared machine a single round can land on a busy minute).
for round in 1 2; do
  "$build/bench/bench_moe_speed" "$dir" --seconds "$seconds" --gate "$gate" > "$dir/c$round.json"
  /usr/bin/python3 "$here/moe_speed_torch.py" "$dir" "$seconds" > "$dir/t$round.json"
done
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
# a ratio, or null where the denominator is 0 (a precision this CPU lacks: oneDNN's
# bf16 Linear without AVX512_BF16 reports 0)
def ratio(a, b, nd=2):
    return round(a / b, nd) if b else None
def best(a, b):
    if isinstance(a, dict):
        return {k: best(a[k], b[k]) for k in a}
    return max(a, b) if isinstance(a, (int, float)) and not isinstance(a, bool) else a
d = sys.argv[1]
c = best(json.load(open(d + "/c1.json")), json.load(open(d + "/c2.json")))
t = best(json.load(open(d + "/t1.json")), json.load(open(d + "/t2.json")))
r = {b: ratio(c["cands_per_s"][b], t["cands_per_s"][b], 2) for b in c["cands_per_s"]}
out = {"bench": "moe_speed", "gate": c["gate"], "params": c["params"], "flops_per_candidate": c["flops_per_candidate"],
       "sgemm_peak_gflops": c["sgemm_peak_gflops"], "moerec_cands_per_s": c["cands_per_s"],
       "torch_cands_per_s": t["cands_per_s"], "ratio_vs_torch": r, "moerec_gflops": c["gflops"],
       "peak_fraction_500": c["peak_fraction_500"], "peak_fraction_1000": c["peak_fraction_1000"],
       "train_samples_per_s": c["train_samples_per_s"], "torch_train_samples_per_s": t["train_samples_per_s"],
       "train_ratio_vs_torch": ratio(c["train_samples_per_s"], t["train_samples_per_s"], 2),
       "torch_max_abs_diff": t["max_abs_diff_vs_moerec"], "torch_version": t["version"],
       "moerec_top2_of_8_cands_per_s_500": c["top2_cands_per_s_500"], "top2_active_fraction": c["top2_active_fraction"],
       "top2_speedup_vs_dense_500": ratio(c["top2_cands_per_s_500"], c["cands_per_s"]["500"], 2),
       "train_full_samples_per_s": c["train_full_samples_per_s"], "torch_train_full_samples_per_s": t["train_full_samples_per_s"],
       "train_full_ratio_vs_torch": ratio(c["train_full_samples_per_s"], t["train_full_samples_per_s"], 2)}
# every precision at batch 500, one thread (issue 10); the OpenBLAS figure is
# today's moerec fp32 path measured in the same run as the baseline
pc = c["prec_cands_per_s_500"]
out["cands_per_s_500"] = {"openblas_fp32": pc["openblas_fp32"], "onednn_fp32": pc["onednn_fp32"], "bf16": pc["bf16"],
                          "int8": pc["int8"], "torch_fp32": t["cands_per_s"]["500"], "torch_bf16": t["bf16_cands_per_s_500"]}
out["precision_used"] = c["prec_used"]
out["auc_change"] = {"bf16": c["auc_change"]["bf16"], "int8": c["auc_change"]["int8"]}
out["max_abs_diff_vs_fp32"] = c["max_abs_diff"]
out["torch_bf16_max_abs_diff"] = t["bf16_max_abs_diff_vs_moerec"]
out["split_speedup"] = c["split_speedup"]  # one batch cut in 2 on 2 cores / whole (score_split_candidates)
b = pc["openblas_fp32"]
out["speedup_vs_openblas_fp32"] = {k: ratio(pc[k], b, 2) for k in ("onednn_fp32", "bf16", "int8")}
out["bf16_vs_torch_bf16"] = ratio(pc["bf16"], t["bf16_cands_per_s_500"], 2)
# the kernels' rate in the same rounds: one oneDNN Linear of the first expert
# layer's shape; the ranker with every FLOP at that rate would score
lin = c["onednn_linear_gflops"]
out["onednn_linear_gflops"] = lin
out["linear_rate_cands_per_s_500"] = {k: round(lin[k] * 1e9 / c["flops_per_candidate"]) for k in ("fp32", "bf16")}
out["fraction_of_linear_rate"] = {
    "onednn_fp32": ratio(pc["onednn_fp32"], out["linear_rate_cands_per_s_500"]["fp32"], 3),
    "bf16": ratio(pc["bf16"], out["linear_rate_cands_per_s_500"]["bf16"], 3)}
# the same Linear on the baseline's OpenBLAS kernels in the same rounds: the
# kernels' own ratio, the most the code around them can reach
out["openblas_linear_gflops"] = c["openblas_linear_gflops"]
out["linear_kernel_ratio"] = {k: ratio(lin[k], c["openblas_linear_gflops"], 2) for k in ("fp32", "bf16")}
out["onednn_fp32_vs_torch_fp32"] = ratio(pc["onednn_fp32"], t["cands_per_s"]["500"], 2)
# the best figures above may come from different rounds; the ratios within
# each round (one C process, then the peer right after it) are the ones to
# compare on a loaded machine: per round, and their min and median
rounds = []
for i in (1, 2):
    ci, ti = json.load(open(d + "/c%d.json" % i)), json.load(open(d + "/t%d.json" % i))
    q, cq = ci["prec_cands_per_s_500"], ci["prec_cands_per_cpu_s_500"]
    rounds.append({"onednn_fp32_vs_openblas": ratio(q["onednn_fp32"], q["openblas_fp32"], 2),
                   "bf16_vs_openblas": ratio(q["bf16"], q["openblas_fp32"], 2),
                   "bf16_vs_torch_bf16": ratio(q["bf16"], ti["bf16_cands_per_s_500"], 2),
                   "cpu_s_onednn_fp32_vs_openblas": ratio(cq["onednn_fp32"], cq["openblas_fp32"], 2),
                   "cpu_s_bf16_vs_openblas": ratio(cq["bf16"], cq["openblas_fp32"], 2),
                   "linear_fp32_vs_openblas": ratio(ci["onednn_linear_gflops"]["fp32"], ci["openblas_linear_gflops"], 2),
                   "linear_bf16_vs_openblas": ratio(ci["onednn_linear_gflops"]["bf16"], ci["openblas_linear_gflops"], 2)})
out["ratios_by_round"] = rounds
out["ratios_min"] = {k: min((r[k] for r in rounds if r[k] is not None), default=None) for k in rounds[0]}
out["prec_cands_per_cpu_s_500"] = c["prec_cands_per_cpu_s_500"]
# which OpenBLAS kernels the baseline ran (OPENBLAS_CORETYPE, else its own choice)
out["openblas_core"] = c["openblas_core"]
print(json.dumps(out))
PY
