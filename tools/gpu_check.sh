#!/usr/bin/env bash
# `make gpu-check`: what anyone with a GPU runs, in about 10 minutes on an H100.
#
#   1. build the extension for this machine's GPU;
#   2. the extension's bad-argument calls, each in its own process, with the libraries its C++
#      standard-library symbols bind to, and a backtrace of any crash (tools/bad_calls.py);
#   3. the whole test suite on cuda (every backend required), in parallel when pytest-xdist is there;
#   4. benchmarks/conv_bench.py: ResNet-18's layers, bf16 channels_last, then fp32 (TF32 as cuDNN);
#   5. a short side-by-side training (CIFAR-10 from $CIFARCONV_DATA, default ./data);
#
# and writes benchmarks/results/<device>-{bad-calls,tests,bf16-cl,fp32,train}.json.  Each step has its own
# time limit; a failed step fails the check, after the later steps have run.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA=${CIFARCONV_DATA:-data}
RESULTS=benchmarks/results

device=$($PYTHON -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print(torch.cuda.get_device_name().lower().replace(" ", "-"))' 2>/dev/null) \
  || { echo "gpu-check: needs a CUDA GPU and a CUDA build of torch"; exit 1; }
arch=$($PYTHON -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
echo "gpu-check on $device (sm ${arch/./}); results in $RESULTS/$device-*.json"
mkdir -p "$RESULTS"
status=0
step() {  # step NAME SECONDS COMMAND...: run one step with a time limit, record its status
  local name=$1 limit=$2; shift 2
  echo; echo "== $name (limit ${limit}s)"; local start=$SECONDS
  timeout "$limit" "$@"; local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ $rc -eq 0 ] || status=1
}

step build 240 env TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=8 \
  $PYTHON -m pip install --quiet --no-build-isolation --no-deps -e .

step bad-calls 180 $PYTHON tools/bad_calls.py --device cuda --out "$RESULTS/$device-bad-calls.json"

parallel=()
$PYTHON -c 'import xdist' 2>/dev/null && parallel=(-n 8)
step tests 330 env CIFARCONV_REQUIRE_BACKENDS=custom,cpp,cuda,triton \
  $PYTHON -m pytest tests -q "${parallel[@]}" --junitxml="$RESULTS/$device-tests.xml"
$PYTHON - "$RESULTS/$device-tests.xml" "$RESULTS/$device-tests.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
try:
    suite = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as e:
    sys.exit(f"no test report: {e}")
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
          if c.find("failure") is not None or c.find("error") is not None]
json.dump({**counts, "seconds": float(suite.get("time", 0)), "failed": failed}, open(sys.argv[2], "w"), indent=1)
print(f"tests: {counts}")
EOF
rm -f "$RESULTS/$device-tests.xml"

step bench-bf16 150 $PYTHON benchmarks/conv_bench.py --device cuda --dtype bfloat16 --channels-last \
  --batch-size 512 --out "$RESULTS/$device-bf16-cl.json"
step bench-fp32 150 $PYTHON benchmarks/conv_bench.py --device cuda --dtype float32 --channels-last \
  --batch-size 512 --out "$RESULTS/$device-fp32.json"

if [ -e "$DATA" ]; then
  run=runs/gpu-check-$device
  step train 150 $PYTHON -m cifarconv.train --conv torch,triton,cuda --model fastnet --epochs 1 \
    --data-dir "$DATA" --out "$run"
  cp "$run/results.json" "$RESULTS/$device-train.json" 2>/dev/null || status=1
else
  echo "== train: no CIFAR-10 at '$DATA' (set CIFARCONV_DATA): FAILED"; status=1
fi

echo; [ $status -eq 0 ] && echo "gpu-check passed" || echo "gpu-check FAILED (see the steps above)"
exit $status
