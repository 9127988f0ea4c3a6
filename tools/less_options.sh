# shellcheck shell=bash disable=SC2034  # defaults of options: the recipe and tools/less_stages.sh read them
# The options every LESS recipe (egs/{wenetspeech,fisher_callhome_spanish,lhotse}/less/run.sh)
# has with the same default: directories, model and training, the LESS loop (stages 4-10 of
# tools/less_stages.sh), the LLM server. A recipe sources this file among its own option
# defaults, before tools/parse_options.sh, and keeps in its run.sh the options whose default
# or meaning is its own (student_epochs, train_opts, whisper_language, llm_model,
# llm_prompt_template). parse_options.sh makes every assignment below an option of the
# recipe, its comment the help text of --help, as if it stood in run.sh; paths are relative
# to the recipe's directory (run.sh changes to it first).
data=data                    # manifests, features, lang dirs, pseudo-labels
exp=exp                      # models, decoding results, RESULTS.md
model=medium                 # model configuration: xs, small, medium, large
train_cmd="python -m less.bin.train"  # training launcher; multi-GPU: "torchrun --nproc-per-node N -m less.bin.train"
model_overrides=             # JSON of model fields to change (less.bin.train --model-overrides)
seed_epochs=40               # epochs of the seed model S
student_init=scratch         # students start from scratch, or from their teacher (teacher)
student_schedule="continue"    # with --student-init teacher: continue the teacher's LR schedule, or restart it
max_duration=600             # seconds of audio per training batch (per GPU)
dtype=bf16                   # training autocast dtype: bf16 (Ampere+ GPUs), fp16 (older GPUs), fp32 (CPU)
train_workers=4              # data-loader workers while training
ssl=none                     # self-supervised pretraining of the encoder on the unlabeled set: none, bestrq, birq
                             # (BEST-RQ / BiRQ, less.bin.ssl_pretrain) before the seed, in --dtype
ssl_cmd="python -m less.bin.ssl_pretrain"  # its launcher; multi-GPU: "torchrun --nproc-per-node N -m less.bin.ssl_pretrain"
ssl_epochs=20                # its epochs
ssl_opts=                    # more less.bin.ssl_pretrain flags, e.g. "--enhanced-start-batches 20000"
ssl_finetune_opts=           # more less.bin.train flags of the models that start from the pretrained encoder,
                             # e.g. "--encoder-lr-scale 0.1 --freeze-encoder-batches 2000"
num_threads=0                # torch CPU threads of training/decoding/labelling (0: all cores)
avg=5                        # decode the average of the last N epochs (with the running averaged model)
beam_size=10                 # beam of pseudo-labelling and decoding
num_iters=3                  # LESS iterations (the paper's 3; the student of k teaches k+1)
systems="L"                  # students: L (LESS); add N (noisy student without LLM), S_cont (supervised control)
max_hypo_wer=0.1             # LESS filter: keep hypo_wer(teacher 1-best, LLM text) <= this (the paper's)
pl_ratio=0                   # hours of pseudo-labelled audio per supervised hour in a mix (0: all kept)
cmd=../../../tools/run_local.sh  # launcher of sharded stages (Kaldi convention), or tools/run_slurm.sh on a cluster
                             # (run_local.sh [--max-jobs N]; on a cluster e.g.
                             # "../../../tools/run_slurm.sh --time 8:00:00 --gpus 1 --mem 32G")
pl_jobs=1                    # stage 6: pseudo-label in this many shards through --cmd (1: one process here)
whisper_teacher=             # iteration 1 teacher: Whisper via faster-whisper (CTranslate2 dir, hub id, builtin:whisper-base)
                             # instead of the seed, e.g. Systran/faster-whisper-large-v3 (the paper's); empty: the seed
skip_bad_audio=false         # stage 1: skip unreadable files below --unsup-audio-dir (listed in the log) instead of stopping
llm_max_failed_fraction=0.02 # stage 7: share of cuts whose LLM request may fail before the stage stops
llm_backend=openai           # openai: an OpenAI-compatible server (vLLM, SGLang, Ollama, an API); hf: transformers here
llm_base_url=http://127.0.0.1:8000/v1  # openai backend: server URL up to /v1
llm_api_key_env=OPENAI_API_KEY         # NAME of the environment variable holding the API key (never logged)
llm_concurrency=16           # openai backend: requests in flight
llm_batch_size=8             # hf backend: prompts per batch
llm_nbest_in_prompt=0        # show the teacher's N-best in the prompt (0: the 1-best only, the paper's)
