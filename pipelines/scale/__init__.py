"""Batch jobs on a Ray cluster: ``python -m pipelines COMMAND INPUT -o OUTPUT --ray [ADDRESS]``.

The same commands as the plain CLI (restore, colorize, nostalgia, story), run by a pool of Ray actors
(one per GPU, or CPU workers) that load their models once and write every result straight to the
output storage (a folder or any fsspec URL). A JSONL manifest beside the results records each input
(input, output, status, seconds, error, attempts), so a rerun resumes: done inputs are skipped,
failed ones are retried with ``--retry-failed``. Videos (colorize) are split into frame chunks that
workers colorize in parallel; one worker then stitches them in order with the source audio.

Modules: :mod:`.options` (command-line flags, no Ray import), :mod:`.storage` (inputs, atomic
outputs, the manifest), :mod:`.worker` (what one actor runs: the CLI's per-input functions, batched
where the network allows), :mod:`.runner` (the driver: plan, dispatch, retries, progress, summary).
Ray is an optional extra (``pip install -r requirements-scale.txt``); the app never needs it.
"""
