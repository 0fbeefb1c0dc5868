#!/usr/bin/env bash
# The H100 measurements of docs/performance.md, through the product path (ansible-playbook with
# inventories/examples/single_gpu_node.yml, connection local). Run from the repository root on the
# GPU machine, with ansible-core importable:  scripts/gpu_benchmarks.sh [budget_seconds [run ...]]
# Each run is bounded so the whole set ends within the budget; runs that no longer fit are skipped.
# Naming runs (e.g. ckpt_save ckpt_resume) runs only those. GPUS=N overrides the processes per node.
set -u
budget=${1:-560}
only=" ${*:2} "
deadline=$(( $(date +%s) + budget ))
inv=inventories/examples/single_gpu_node.yml
export ANSIBLE_CONFIG=$PWD/ansible.cfg NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p .collections/ansible_collections/awsome results/gpu
ln -sfn ../../.. .collections/ansible_collections/awsome/distributed_training

# The fsdp trainer by torchrun directly, without the playbook around it (~35 s per run here, which a
# device call's budget may not hold): a preset's arguments as the launcher plans them, plus overrides.
direct() {  # direct NAME MIN_SECONDS PRESET PARAMS_JSON [trainer args ...]
  local name=$1 need=$2 preset=$3 params=$4 left=$(( deadline - $(date +%s) )) out=results/gpu/$1 t0
  local -a args
  shift 4
  [[ "$only" == *" $name "* ]] || return 0
  if [ "$left" -lt "$need" ]; then echo "== $name: skipped (${left}s left, needs ${need}s)"; return; fi
  # One argument per line: an empty value (data_path '') stays an argument.
  mapfile -t args < <(python3 -c 'import json, sys; sys.path.insert(0, ".collections")
from ansible_collections.awsome.distributed_training.plugins.module_utils import testcase as t
print("\n".join(t.resolve(t.load_manifest("test_cases", "fsdp"), preset=sys.argv[1], params=json.loads(sys.argv[2]),
                          hosts=["local"], target="all")["args"]))' "$preset" "$params")
  [ "${#args[@]}" -gt 0 ] || { echo "== $name: the plan failed"; return; }
  rm -rf "$out"; mkdir -p "$out"
  t0=$(date +%s)
  PYTHONPATH=test_cases/common:test_cases/fsdp/src${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
    timeout "$left" python3 -m torch.distributed.run --standalone --nproc-per-node "${GPUS:-4}" \
    test_cases/fsdp/src/train.py "${args[@]}" --output-dir "$out" "$@" > "$out/torchrun.log" 2>&1
  echo "== $name: rc=$? in $(( $(date +%s) - t0 ))s (torchrun)"
}

run() {  # run NAME MIN_SECONDS PLAYBOOK ARGS...
  local name=$1 need=$2 left=$(( deadline - $(date +%s) )) t0
  shift 2
  if [ "$only" != "  " ] && [[ "$only" != *" $name "* ]]; then return; fi
  if [ "$left" -lt "$need" ]; then echo "== $name: skipped (${left}s left, needs ${need}s)"; return; fi
  t0=$(date +%s)
  timeout "$left" ansible-playbook "$@" -i "$inv" -e timeout_s=$(( left - 20 )) ${GPUS:+-e procs_per_node=$GPUS} > "results/gpu/$name.log" 2>&1
  echo "== $name: rc=$? in $(( $(date +%s) - t0 ))s -> $(readlink -f results/latest)"
  ln -sfn "$(readlink -f results/latest)" "results/gpu/$name"
}

# The machine's job environment (/etc/awsome/nccl.env, NVLink multicast off) from the nccl role.
ansible-playbook playbooks/job_env.yml -i "$inv" > results/gpu/job_env.log 2>&1 || echo "job_env.yml failed"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())"
# torchtitan itself on the same machine (by name, first): the anchor the presets are measured against.
anchor() {  # anchor NAME [scripts/torchtitan_anchor.py options]
  local name=$1 t0
  shift
  [[ "$only" == *" $name "* ]] || return 0
  t0=$(date +%s)
  timeout $(( deadline - t0 )) python3 scripts/torchtitan_anchor.py "results/gpu/$name" --gpus "${GPUS:-4}" "$@"
  echo "== $name: rc=$? in $(( $(date +%s) - t0 ))s"
}
anchor torchtitan_8b
anchor torchtitan_8b_fp8 --float8 tensorwise
anchor torchtitan_8b_fp8_rowwise --float8 rowwise
anchor torchtitan_8b_l10 --log-freq 10
anchor torchtitan_8b_fp8_l10 --float8 tensorwise --log-freq 10
# The catalogue's torchtitan and Megatron-LM cases through their playbooks (by name). This machine
# has no package index: the frameworks' wheels (.whl) go into its own Python, and
# <envs>/<venv>/bin/python runs it where roles/testcase_env builds a virtualenv on a cluster.
envs=/var/tmp/awsome/envs
case_env() {  # case_env VENV WHEEL...
  local venv=$1
  shift
  [ $# -eq 0 ] || python3 -m pip install -q --no-index --no-deps "$@" > "results/gpu/env_$venv.log" 2>&1 \
    || { echo "== $venv: the wheels did not install (results/gpu/env_$venv.log)"; return; }
  # A wrapper, not a symlink: a symlinked interpreter would lose the site-packages of a venv python3.
  mkdir -p "$envs/$venv/bin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > "$envs/$venv/bin/python"
  chmod +x "$envs/$venv/bin/python"
}
if [[ "$only" == *" titan_"* ]]; then
  case_env torchtitan .whl/torchtitan-0.2.2-*.whl .whl/torchao-*.whl .whl/torchdata-*.whl .whl/datasets-*.whl \
    .whl/dill-*.whl .whl/multiprocess-*.whl .whl/tyro-*.whl .whl/docstring_parser-*.whl .whl/typeguard-*.whl \
    .whl/tomli-*.whl
  titan=(playbooks/run_torchtitan.yml -e launcher_envs_root=$envs)
  run titan_debug 60 "${titan[@]}" -e preset=gpu-debug -e '{"params": {"steps": 30}}'
fi
# JAX: the machine's own jax (0.11.2 with its CUDA 13 plugin; the case pins 0.10.2, whose jaxlib and
# CUDA plugin are beyond what a device call may carry). One process drives both GPUs: no procs_per_node.
if [[ "$only" == *" jax_"* ]]; then
  case_env jax
  GPUS='' run jax_gpu 60 playbooks/run_jax.yml -e launcher_envs_root=$envs -e preset=gpu-small
fi
# Composer: its pinned torch 2.7.0 with CUDA libraries (~3 GB) cannot reach that machine; mosaicml
# 0.32.1 itself (pure Python) with its small dependencies runs there on the machine's torch (a
# deviation the docs state: Composer declares torch<2.7.1).
if [[ "$only" == *" composer_"* ]]; then
  # composer imports mcli (mosaicml-cli) at start, hence its dependencies too.
  case_env composer .whl/mosaicml-*.whl .whl/coolname-*.whl .whl/torch_optimizer-*.whl .whl/pytorch_ranger-*.whl \
    .whl/importlib_metadata-*.whl .whl/mosaicml_cli-*.whl .whl/argcomplete-*.whl .whl/arrow-*.whl \
    .whl/types_python_dateutil-*.whl .whl/backoff-*.whl .whl/gql-*.whl .whl/graphql_core-*.whl .whl/websockets-*.whl \
    .whl/prompt_toolkit-*.whl .whl/wcwidth-*.whl .whl/questionary-*.whl .whl/ruamel_yaml-*.whl .whl/validators-*.whl \
    .whl/termcolor-*.whl
  run composer_gpu 60 playbooks/run_composer.yml -e launcher_envs_root=$envs -e preset=gpu-8
fi
if [[ "$only" == *" megatron_"* ]]; then
  case_env megatron .whl/megatron_core-0.19.2-*.whl
  run megatron_tp2 60 playbooks/run_megatron.yml -e launcher_envs_root=$envs -e preset=gpu-tp2
fi
if [[ "$only" == *" titan_8b"* ]]; then
  run titan_8b 140 "${titan[@]}" -e preset=llama3-8b -e '{"params": {"steps": 30}}'
  run titan_8b_fp8 140 "${titan[@]}" -e preset=llama3-8b-fp8 -e '{"params": {"steps": 30}}'
fi
fsdp8b=(playbooks/run_fsdp.yml -e preset=h100-llama3-8b)
# 43 steps: rank 0 profiles the last 3 (profile-rank0.json), outside the 11-40 window.
run fsdp8b_compile 110 "${fsdp8b[@]}" -e '{"params": {"steps": 43, "torch_profiler": true}}'
run fsdp8b_noac 100 "${fsdp8b[@]}" -e '{"params": {"steps": 40, "ac": "none"}}'
run fsdp8b_cudnn 100 "${fsdp8b[@]}" -e '{"params": {"steps": 40, "sdpa_backend": "cudnn"}}'
# Eager keeps more activations per block than compiled code: checkpoint every block to fit 80 GB.
run fsdp8b_eager 70 "${fsdp8b[@]}" -e '{"params": {"steps": 20, "compile": false, "ac_every": 1}}'
if [ "$only" != "  " ]; then
  # Launch modes (by name): the same preset started as torchrun (launch.mode torchrun) and by the
  # case's own command (launch_mode=command), back to back: a launcher must cost nothing.
  run fsdp8b_torchrun 100 "${fsdp8b[@]}" -e '{"params": {"steps": 30}}'
  run fsdp8b_command 100 "${fsdp8b[@]}" -e launch_mode=command -e '{"params": {"steps": 30}}'
  # The same eager run again (by name): the run-to-run spread that bounds the compile/eager comparison.
  run fsdp8b_eager_repeat 70 "${fsdp8b[@]}" -e '{"params": {"steps": 20, "compile": false, "ac_every": 1}}'
  # Activation-checkpointing sweep (run by name): how many blocks may keep their activations.
  for ac in 1 2 4 none; do
    knob=$([ $ac = none ] && echo '"ac": "none"' || echo "\"ac\": \"selective\", \"ac_every\": $ac")
    run fsdp8b_ac$ac 90 "${fsdp8b[@]}" -e "{\"params\": {\"steps\": 43, \"torch_profiler\": true, $knob}}"
  done
  # NCCL's share of the SMs (run by name): its kernels run beside the GEMMs they overlap with.
  nvls='"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"'
  for ctas in 16 8 4; do
    run fsdp8b_ctas$ctas 90 "${fsdp8b[@]}" -e "{\"params\": {\"steps\": 43, \"torch_profiler\": true},
      \"instance_env\": {$nvls, \"NCCL_MAX_CTAS\": \"$ctas\"}}"
  done
  # Memory held for NCCL's streams (run by name): c10d without record_stream, preset and no AC.
  norecord="\"instance_env\": {$nvls, \"TORCH_NCCL_AVOID_RECORD_STREAMS\": \"1\"}"
  run fsdp8b_norecord 90 "${fsdp8b[@]}" -e "{\"params\": {\"steps\": 43}, $norecord}"
  run fsdp8b_norecord_noac 90 "${fsdp8b[@]}" -e "{\"params\": {\"steps\": 43, \"ac\": \"none\"}, $norecord}"
  # float8 (by name; torchao importable): the fp8 preset profiled past step 30, rowwise scaling
  # instead of tensorwise, and 100 steps of the fp8 and bf16 presets on the same seed and data for
  # the loss parity (their 11-40 means are the throughput figures too).
  fp8=(playbooks/run_fsdp.yml -e preset=h200-llama3-8b-fp8)
  run fsdp8b_fp8 90 "${fp8[@]}" -e '{"params": {"steps": 33, "torch_profiler": true}}'
  run fsdp8b_fp8_rowwise 90 "${fp8[@]}" -e '{"params": {"steps": 30, "float8": "rowwise",
    "float8_all_gather": false, "float8_from_step": 1}}'
  run fsdp8b_fp8_100 150 "${fp8[@]}" -e '{"params": {"steps": 100, "log_every": 1}}'
  run fsdp8b_bf16_100 160 "${fsdp8b[@]}" -e '{"params": {"steps": 100, "log_every": 1}}'
  # What a save costs training (by name): llama3-1b, saves at steps 10 and 20, synchronous, then
  # written by a background thread, then by a background process (summarize_runs.py: "checkpoint cost").
  ck='"preset": "llama3-1b", "params": {"compile": false, "warmup_steps": 2, "steps": 25, "checkpoint_every": 10'
  run ckpt_sync 70 playbooks/run_fsdp.yml -e "{$ck}}"
  run ckpt_thread 60 playbooks/run_fsdp.yml -e "{$ck, \"async_checkpoint\": \"thread\"}}"
  run ckpt_process 60 playbooks/run_fsdp.yml -e "{$ck, \"async_checkpoint\": \"process\"}}"
  # What the launcher costs here (by name, overhead_*): launch to rank 0's first step and tokens/s,
  # torchrun by hand on the planned arguments against ansible-playbook, alternated, llama3-1b eager.
  oh='{"compile": false, "warmup_steps": 2, "steps": 15, "checkpoint_every": 0}'
  first_step() {  # first_step NAME T0 METRICS: seconds from T0 to step 1, mean tokens/s/GPU of steps 6+
    [ -f "$3" ] && python3 -c 'import json, sys
ev = [json.loads(l) for l in open(sys.argv[3]) if "\"step\"" in l]
st = [e for e in ev if e.get("event") == "step"]
tps = [e["tokens_per_s_per_device"] for e in st if e["step"] >= 6]
first, last = st[0]["time"] - float(sys.argv[2]), st[-1]["step"]
print(f"== {sys.argv[1]}: first step {first:.1f} s after launch, "
      f"{sum(tps) / len(tps):,.1f} tokens/s/GPU (steps 6-{last})")' "$1" "$2" "$3"
  }
  for i in 1 2; do
    t0=$(date +%s.%N); direct overhead_hand$i 40 llama3-1b "$oh"
    first_step overhead_hand$i "$t0" results/gpu/overhead_hand$i/metrics-rank0.jsonl
    t0=$(date +%s.%N); run overhead_playbook$i 60 playbooks/run_fsdp.yml -e preset=llama3-1b -e "{\"params\": $oh}"
    first_step overhead_playbook$i "$t0" results/gpu/overhead_playbook$i/nodes/gpu0/metrics-rank0.jsonl
  done
  # The same comparisons by torchrun directly (see direct()), for one call's budget.
  direct fsdp8b_fp8_100_tr 120 h200-llama3-8b-fp8 '{"steps": 100, "log_every": 1, "torch_profiler": true}'
  direct fsdp8b_bf16_100_tr 130 h100-llama3-8b '{"steps": 100, "log_every": 1}'
  # The presets as they log (every 10th step, as torchtitan's anchors with --log-freq 10: a logged
  # step waits for the GPUs), against logging every step; then rowwise scaling. The loss-parity runs
  # above log every step (the comparison is per step).
  direct fsdp8b_fp8_l10 110 h200-llama3-8b-fp8 '{"steps": 50, "log_every": 10}'
  direct fsdp8b_bf16_l10 120 h100-llama3-8b '{"steps": 50, "log_every": 10}'
  direct fsdp8b_fp8_l1 100 h200-llama3-8b-fp8 '{"steps": 40, "log_every": 1}'
  direct fsdp8b_fp8_rowwise_l10 100 h200-llama3-8b-fp8 '{"steps": 40, "log_every": 10, "float8": "rowwise", "float8_all_gather": false, "float8_from_step": 1}'
  # The same questions where only one GPU is lent (llama3-1b at seq 8192, compiled, no AC): float8
  # tensorwise against rowwise against bf16, and what logging every step costs.
  one='"model": "llama3-1b", "seq_len": 8192, "local_batch_size": 1, "steps": 40, "warmup_steps": 10, "ac": "none", "compile": true, "reshard_after_forward": false'
  from1='"float8_from_step": 1'                        # float8 from the first step (no bf16 warm-up)
  early="$from1, \"float8_all_gather\": true"           # the fp8 preset's recipe until 2026-12-01
  bf16="\"float8\": \"none\", \"float8_all_gather\": false, $from1"   # the float8 preset's settings without float8
  direct fsdp1b_bf16_l10 80 h200-llama3-8b-fp8 "{$one, $bf16, \"log_every\": 10}"
  direct fsdp1b_fp8_l10 80 h200-llama3-8b-fp8 "{$one, \"float8\": \"tensorwise\", \"float8_all_gather\": false, $from1, \"log_every\": 10}"
  direct fsdp1b_fp8_rowwise_l10 80 h200-llama3-8b-fp8 "{$one, \"float8\": \"rowwise\", \"float8_all_gather\": false, $from1, \"log_every\": 10}"
  direct fsdp1b_fp8_l1 80 h200-llama3-8b-fp8 "{$one, \"float8\": \"tensorwise\", \"float8_all_gather\": false, $from1, \"log_every\": 1}"
  # The 2-GPU 8B presets' memory where only one GPU is lent: it plays rank 0 of two ranks whose
  # collectives move nothing (DTCASE_FAKE_WORLD_SIZE, dtcase/runtime.py), for peak memory only (no
  # communication; the loss means nothing). The bf16 preset and the fp8 preset's earlier recipe were
  # measured on two real GPUs (98.6 and 104.7 GiB), and the bf16 preset on four (68.4): the yardsticks.
  fake() {  # fake RANKS NAME MIN_SECONDS PRESET PARAMS_JSON
    local ranks=$1
    shift
    DTCASE_FAKE_WORLD_SIZE=$ranks GPUS=1 direct "$@"
  }
  fake 2 fsdp8b_bf16_fake2 100 h100-llama3-8b '{"steps": 30, "log_every": 10}'
  fake 2 fsdp8b_fp8_early_fake2 100 h200-llama3-8b-fp8 "{\"steps\": 30, \"log_every\": 10, $early}"
  fake 2 fsdp8b_fp8_fake2 100 h200-llama3-8b-fp8 '{"steps": 30, "log_every": 10}'
  fake 4 fsdp8b_bf16_fake4 90 h100-llama3-8b '{"steps": 30, "log_every": 10}'
  # The preset before 2026-12-02: its bf16 warm-up without the float8 all-gather after it.
  bf16ag='"float8_all_gather": false'
  fake 2 fsdp8b_fp8_bf16ag_fake2 100 h200-llama3-8b-fp8 "{\"steps\": 30, \"log_every\": 10, $bf16ag}"
  fake 2 fsdp8b_fp8_bf16ag_fake2_l1 100 h200-llama3-8b-fp8 "{\"steps\": 50, \"log_every\": 1, $bf16ag}"
  # Every step's time, 50 steps: where the two float8 recipes' compute differs.
  fake 2 fsdp8b_fp8_early_fake2_l1 100 h200-llama3-8b-fp8 "{\"steps\": 50, \"log_every\": 1, $early}"
  fake 2 fsdp8b_fp8_fake2_l1 100 h200-llama3-8b-fp8 '{"steps": 50, "log_every": 1}'
  # float8 loss parity where only one GPU is lent: the 8B preset's width and settings with its first
  # 16 blocks (8B's 32 blocks and their AdamW state do not fit one GPU), 100 steps logged every step;
  # bf16 against float8 from the first step (the preset's earlier recipe) and what might track bf16 closer.
  p16='"n_layers": 16, "steps": 100, "log_every": 1'
  direct fsdp8b16_bf16 110 h200-llama3-8b-fp8 "{$p16, $bf16}"
  direct fsdp8b16_fp8 100 h200-llama3-8b-fp8 "{$p16, $early}"
  # Two bf16 runs that differ only in kernels (eager; flash attention instead of cuDNN's): how far
  # apart the same training drifts when nothing but rounding changes, the yardstick for float8.
  direct fsdp8b16_bf16_eager 90 h200-llama3-8b-fp8 "{$p16, $bf16, \"compile\": false}"
  direct fsdp8b16_bf16_flash 100 h200-llama3-8b-fp8 "{$p16, $bf16, \"sdpa_backend\": \"flash\"}"
  # The same pair on two more seeds: is float8's difference from bf16 a bias (one sign) or drift?
  for seed in 1 2; do
    direct fsdp8b16_bf16_s$seed 90 h200-llama3-8b-fp8 "{$p16, \"seed\": $seed, $bf16}"
    direct fsdp8b16_fp8_s$seed 90 h200-llama3-8b-fp8 "{$p16, \"seed\": $seed, $early}"
  done
  # float8 after a bf16 warm-up (float8_from_step 11; float8 all-gather off, which that needs), seeds 0-2
  # against the bf16 runs above.
  for seed in 0 1 2; do
    direct fsdp8b16_fp8_from11_s$seed 100 h200-llama3-8b-fp8 "{$p16, \"seed\": $seed, \"float8_all_gather\": false, \"float8_from_step\": 11}"
  done
  # The warm-up the fp8 preset uses (switch at step 10, the last step of the learning-rate warm-up,
  # so that the recompile stays out of the 11-40 window), and its earlier recipe for 40 steps.
  for seed in 0 1 2; do
    direct fsdp8b16_fp8_from10_s$seed 100 h200-llama3-8b-fp8 "{$p16, \"seed\": $seed, \"float8_all_gather\": false, \"float8_from_step\": 10}"
  done
  # The same parity on the full 8B model where only one GPU is lent: one rank (so one sequence a
  # step, half the 2-GPU global batch) with every block recomputed in backward ("ac": "full") and the
  # gathered weights freed after forward, so that all 32 blocks' fp32 weights, gradients and AdamW
  # state (120 GiB) fit one H200. The preset's recipe, and without its float8 all-gather, against
  # their bf16 twin.
  w1='"steps": 100, "log_every": 1, "ac": "full", "reshard_after_forward": true'
  direct fsdp8b_bf16_w1 200 h200-llama3-8b-fp8 "{$w1, $bf16}"
  direct fsdp8b_fp8_w1 180 h200-llama3-8b-fp8 "{$w1}"
  direct fsdp8b_fp8_bf16ag_w1 180 h200-llama3-8b-fp8 "{$w1, $bf16ag}"
  # ... and with float8 all-gather from the switch (the preset since 2026-12-02): the same float8
  # numbers, cast from the fp32 shards instead of the gathered bf16 weights.
  direct fsdp8b16_fp8_from10_ag_s0 100 h200-llama3-8b-fp8 "{$p16, \"float8_all_gather\": true, \"float8_from_step\": 10}"
  direct fsdp8b16_fp8_40 60 h200-llama3-8b-fp8 "{\"n_layers\": 16, \"steps\": 40, \"log_every\": 1, $early}"
  direct fsdp8b16_fp8_noacc 100 h200-llama3-8b-fp8 "{$p16, $early, \"float8_fast_accum\": false}"
  direct fsdp8b16_fp8_skipw2 100 h200-llama3-8b-fp8 "{$p16, $early, \"float8_skip\": \"*.w2\"}"
  direct fsdp8b16_fp8_ends 100 h200-llama3-8b-fp8 "{$p16, $early, \"float8_skip\": \"layers.0.*,layers.15.*\"}"
  direct fsdp8b16_fp8_rowwise 100 h200-llama3-8b-fp8 "{$p16, \"float8\": \"rowwise\", \"float8_all_gather\": false, $from1}"
  direct fsdp8b16_fp8_gwhp 110 h200-llama3-8b-fp8 "{$p16, \"float8\": \"rowwise_with_gw_hp\", \"float8_all_gather\": false, $from1}"
  # A checkpoint past the float8 switch (step 4, float8 all-gather from there as the preset), then the
  # same run resumed from it: steps 9-12 again, float8-gathered from the resumed run's first step.
  ck8='"model": "llama3-1b", "seq_len": 8192, "local_batch_size": 1, "steps": 12, "warmup_steps": 4, "float8_from_step": 4, "checkpoint_every": 8, "log_every": 1'
  direct fsdp1b_fp8_ckpt 70 h200-llama3-8b-fp8 "{$ck8}" --checkpoint-dir /var/tmp/fsdp1b_fp8_ckpt
  direct fsdp1b_fp8_resumed 60 h200-llama3-8b-fp8 "{$ck8, \"resume\": true}" --checkpoint-dir /var/tmp/fsdp1b_fp8_ckpt
  ckd='{"compile": false, "warmup_steps": 2, "steps": 25, "checkpoint_every": 10'
  direct ckpt_process_tr 40 llama3-1b "$ckd, \"async_checkpoint\": \"process\"}" --checkpoint-dir /var/tmp/ckpt_process_tr
  direct ckpt_thread_tr 40 llama3-1b "$ckd, \"async_checkpoint\": \"thread\"}" --checkpoint-dir /var/tmp/ckpt_thread_tr
  direct ckpt_sync_tr 50 llama3-1b "$ckd}" --checkpoint-dir /var/tmp/ckpt_sync_tr
fi
run nccl_sweep 40 playbooks/run_collectives.yml -e preset=h100-sweep
ckpt='"preset": "llama3-1b", "params": {"compile": false, "warmup_steps": 2, "checkpoint_every": 5'
run ckpt_save 60 playbooks/run_fsdp.yml -e "{$ckpt, \"steps\": 10}}"
saved=$(basename "$(readlink -f results/gpu/ckpt_save)")
run ckpt_resume 80 playbooks/run_fsdp.yml -e "{$ckpt, \"steps\": 15, \"resume\": true}, \"resume_from\": \"$saved\"}"

runs=(); for d in results/gpu/*/; do [ -f "$d/summary.json" ] || [ -f "$d/metrics-rank0.jsonl" ] && runs+=("${d%/}"); done
compare=()
[ -d results/gpu/fsdp8b_compile ] && [ -d results/gpu/fsdp8b_eager ] && \
  compare=(--compare-loss results/gpu/fsdp8b_compile results/gpu/fsdp8b_eager --steps 20)
python3 scripts/summarize_runs.py "${runs[@]}" "${compare[@]}"
# float8 against bf16, same seed and data, 100 steps (the tolerance is docs/performance.md's).
for tr in "" _tr; do
  [ -d results/gpu/fsdp8b_fp8_100$tr ] && [ -d results/gpu/fsdp8b_bf16_100$tr ] && python3 scripts/summarize_runs.py \
    --compare-loss results/gpu/fsdp8b_fp8_100$tr results/gpu/fsdp8b_bf16_100$tr --steps 100
done
for f in results/gpu/torchtitan*/anchor.json; do [ -f "$f" ] && echo "$f: $(tr -d "\n" < "$f")"; done
