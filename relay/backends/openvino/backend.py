"""The fast CPU backend: the model converted once to an OpenVINO graph with int8 weights, run by the OpenVINO runtime.

Why OpenVINO and why this shape (measurements in docs/engine.md): it is a plain `pip install openvino`
wheel, its CPU plugin runs KoGPT-2 with int8 weights at ~5x transformers fp32, and its PagedAttention
operation reads the KV cache of many sequences of different lengths in one call. The graph is ours
(`_StepGraph`: GPT-2's forward), turned into a paged-attention graph by OpenVINO's own transformation
(the one OpenVINO GenAI and vLLM's OpenVINO backend use), so the token loop stays in Python and picks ids
with exactly the engine's rules (`TokenPicker`): banned ids, held paragraph ends, every sampling knob and
per-request seeds hold as on transformers.

Several writers at once: each model variant has one `_Batcher` thread. Every step it runs, in one call of the
runtime, the next token of every candidate being written and the next piece of every story still being read,
then picks each candidate's next id under its own request's rules and seed. The runtime does the ragged
batching (one row per sequence, each with its own length and cache blocks); the batcher only says who is in
the step. A row's logits are bit for bit the same alone, beside others or read in other
pieces (checked on the real architecture), so a seed gives the same text however busy the server is.

Kept story caches: the cache is a pool of blocks (`_Pool`). Whole blocks of a prompt, once read, stay in the
pool keyed by the ids they hold up to their end, until the space is needed; a new turn of the same story
starts from them and reads only the new text.

LoRA adapters are merged into a copy of the base weights before conversion: one converted model per adapter.
Converted models are cached under $RELAY_CACHE/openvino/<hash of the weights and the converter>, so a changed
model or adapter is converted again and an unchanged one is loaded in seconds.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np

from relay.backends.base import Backend, BackendError, GenerationRequest, TokenPicker, cache_dir
from relay.loading import load_adapters

log = logging.getLogger(__name__)

CONVERTER_VERSION = "2"  # bump when _StepGraph or _compress_int8 change, so cached graphs are rebuilt
PRECISIONS = ("int8", "fp32")
PRECISION_ENV = "RELAY_OPENVINO_PRECISION"  # int8 (default) | fp32 (exact, for comparisons)
KV_MB_ENV = "RELAY_OPENVINO_KV_MB"  # the KV cache pool of each model variant, in MB
DEFAULT_KV_MB = 256  # KoGPT-2 int8: ~22 KB per position, so ~11,000 positions (11 full 1,024-token windows)
MAX_BLOCKS = 8192  # a tiny model's blocks are small; no use in more
# While another writer's candidates are being written, a story is read this many positions per step, so their
# next tokens come every ~50 ms instead of waiting for the whole story (a multiple of the cache block size).
PREFILL_CHUNK = 128


def _step_graph_class():
    import torch

    class _StepGraph(torch.nn.Module):
        """GPT-2's forward with the KV cache as inputs and outputs and explicit positions; logits only for the
        positions in `logits_indices` (each sequence's last one), so reading a story does not pay the 51,200-wide
        output layer per token.

        The cache follows the pattern OpenVINO's paged-attention transformation recognises (and that its CPU
        plugin fuses): ReadValue -> Gather(beam_idx) -> Concat -> scaled_dot_product_attention. The
        transformation replaces it with PagedAttention over a block pool and removes beam_idx and the mask."""

        def __init__(self, model):
            super().__init__()
            self.model = model
            config = model.config
            self.heads, self.head_size = config.n_head, config.n_embd // config.n_head

        def forward(self, input_ids, position_ids, beam_idx, logits_indices, *past):
            body = self.model.transformer
            batch, length = input_ids.shape
            past_length = past[0].shape[2]
            x = body.wte(input_ids) + body.wpe(position_ids)
            allowed = torch.arange(past_length + length)[None, :] <= (torch.arange(length)[:, None] + past_length)
            mask = torch.where(allowed, 0.0, -float("inf"))
            presents = []
            for index, block in enumerate(body.h):
                q, k, v = block.attn.c_attn(block.ln_1(x)).split(self.heads * self.head_size, dim=2)
                q, k, v = [t.view(batch, length, self.heads, self.head_size).transpose(1, 2) for t in (q, k, v)]
                k = torch.cat([past[2 * index].index_select(0, beam_idx), k], dim=2)
                v = torch.cat([past[2 * index + 1].index_select(0, beam_idx), v], dim=2)
                presents += [k, v]
                attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                x = x + block.attn.c_proj(attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_size))
                x = x + block.mlp.c_proj(block.mlp.act(block.mlp.c_fc(block.ln_2(x))))
            x = x.reshape(-1, x.shape[-1]).index_select(0, logits_indices)
            return (self.model.lm_head(body.ln_f(x)), *presents)

    return _StepGraph


def _check_supported(model) -> None:
    config = model.config
    if getattr(config, "model_type", None) != "gpt2" or getattr(config, "scale_attn_by_inverse_layer_idx", False) \
            or getattr(config, "reorder_and_upcast_attn", False) or not getattr(config, "scale_attn_weights", True):
        raise BackendError(
            f"openvino 백엔드는 GPT-2(KoGPT-2) 모델만 변환합니다 / the openvino backend converts GPT-2 models "
            f"(KoGPT-2) only; this is {getattr(config, 'model_type', '?')}. Use --backend transformers.")


def convert(model, precision: str = "int8"):
    """A stateful OpenVINO model of a (merged, plain) transformers GPT-2, int8 weights unless precision="fp32".

    This is what is cached on disk; `paged(model)` turns it into the graph that runs."""
    import numpy as np
    import openvino as ov
    import torch
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    _check_supported(model)
    config = model.config
    heads, head_size, layers = config.n_head, config.n_embd // config.n_head, config.n_layer
    graph = _step_graph_class()(model.float().eval())
    example = (torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None], torch.zeros(1, dtype=torch.int32),
               torch.tensor([2])) + tuple(torch.zeros(1, heads, 2, head_size) for _ in range(2 * layers))
    shapes = [(ov.PartialShape([-1, -1]), ov.Type.i64), (ov.PartialShape([-1, -1]), ov.Type.i64),
              (ov.PartialShape([-1]), ov.Type.i32), (ov.PartialShape([-1]), ov.Type.i64)] + [
        (ov.PartialShape([-1, heads, -1, head_size]), ov.Type.f32)] * (2 * layers)
    with torch.no_grad():
        converted = ov.convert_model(graph, example_input=example, input=shapes)
    names = ["input_ids", "position_ids", "beam_idx", "logits_indices"] + [f"past.{i}" for i in range(2 * layers)]
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ["logits"] + [f"present.{i}" for i in range(2 * layers)]):
        port.get_tensor().set_names({name})
    if precision == "int8":
        _compress_int8(converted)
    apply_make_stateful_transformation(converted, {f"past.{i}": f"present.{i}" for i in range(2 * layers)})
    # Each cache starts empty with the batch of input_ids: the paged-attention transformation looks for a
    # ReadValue with an initializer, as exporters write it.
    batch = ops.gather(ops.shape_of(converted.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    for op in converted.get_ops():
        if op.get_type_name() == "ReadValue":
            empty = [batch] + [ops.constant(np.array([heads, 0, head_size][i:i + 1], dtype=np.int64))
                               for i in range(3)]
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.concat(empty, axis=0))])
    converted.validate_nodes_and_infer_types()
    return converted


def paged(model):
    """The converted model with PagedAttention over a block pool (OpenVINO's own transformation, in place).

    Its inputs: input_ids and position_ids of every new position of every sequence, one after another;
    logits_indices (where each sequence's last new position is); past_lens, subsequence_begins,
    block_indices, block_indices_begins, max_context_len (which sequence holds which cache blocks); and
    key_cache.i / value_cache.i, the pool, whose layout and precision the CPU plugin chooses at compile time."""
    from openvino._offline_transformations import paged_attention_transformation

    paged_attention_transformation(model)
    names = {port.get_any_name() for port in model.inputs}
    if "key_cache.0" not in names or "beam_idx" in names:
        raise BackendError("OpenVINO's paged-attention transformation did not recognise the converted graph; "
                           "this openvino version is not supported (see requirements.txt), or use --backend "
                           "transformers")
    return model


def _compress_int8(model) -> int:
    """Store every matrix multiplied by activations as int8 with one fp32 scale per output channel (symmetric).

    The CPU plugin recognises Constant(i8) -> Convert -> Multiply(scale) as compressed weights and multiplies
    straight from int8, which halves and halves again the bytes read per token (decoding is memory-bound)."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    count = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        source = node.input_value(1).get_node()
        if source.get_type_name() != "Constant":
            continue
        weight = source.get_data()
        if weight.ndim != 2 or weight.dtype != np.float32 or weight.size < 4096:
            continue
        reduce_axis = 1 if node.get_attributes()["transpose_b"] else 0  # the input (summed-over) dimension
        scale = np.abs(weight).max(axis=reduce_axis, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        weights = ops.multiply(ops.convert(ops.constant(quantized), ov.Type.f32),
                               ops.constant(scale.astype(np.float32)))
        node.input(1).replace_source_output(weights.output(0))
        count += 1
    return count


def weights_digest(model, precision: str) -> str:
    """A hash of the weights (after merging an adapter), the shape and the converter: the cache key."""
    digest = hashlib.sha256(f"{CONVERTER_VERSION}:{precision}:{model.config.to_json_string()}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_model_path(model, precision: str, cache: Path | None = None) -> Path:
    """Convert `model` unless an identical conversion is cached; returns the cached .xml path."""
    import openvino as ov

    folder = (cache or cache_dir()) / "openvino" / weights_digest(model, precision)
    xml = folder / "model.xml"
    if xml.is_file() and (folder / "model.bin").is_file():
        return xml
    log.info("converting the model to OpenVINO %s (once; cached in %s)", precision, folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        ov.save_model(convert(model, precision), tmp / "model.xml", compress_to_fp16=False)
        try:
            tmp.rename(folder)
        except OSError:  # another process converted it meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return xml


class _Pool:
    """The KV cache blocks of one compiled model, bound once to its infer request, and who holds which block.

    Only the batcher thread touches a pool. A block is free, held by candidates (refs > 0), or kept: a whole
    block of a story's prompt that was read, findable by the ids it holds up to its end, reused by the next turn
    and given up (oldest first) when space is needed."""

    def __init__(self, compiled, request, budget_bytes: int, count: int | None = None):
        import openvino as ov

        ports = [port for port in compiled.inputs if port.get_any_name().startswith(("key_cache.", "value_cache."))]
        block_bytes = 0
        for port in ports:
            shape = port.get_partial_shape()
            block_bytes += port.get_element_type().size * int(np.prod([shape[i].get_length() for i in (1, 2, 3)]))
        self.count = count or max(8, min(MAX_BLOCKS, budget_bytes // block_bytes))
        self.size = compiled.input("value_cache.0").get_partial_shape()[2].get_length()  # positions per block
        self.tensors = []
        for port in ports:
            shape = port.get_partial_shape()
            tensor = ov.Tensor(port.get_element_type(), [self.count] + [shape[i].get_length() for i in (1, 2, 3)])
            request.set_tensor(port.get_any_name(), tensor)
            self.tensors.append(tensor.data)
        self.free: list[int] = []
        self.refs: list[int] = []
        self.kept: OrderedDict[tuple, int] = OrderedDict()  # the prompt ids up to a block's end -> the block
        self.key_of: dict[int, tuple] = {}
        self.reset()

    def reset(self) -> None:
        """Every block free, nothing kept (after a failure left the books in doubt)."""
        self.free = list(range(self.count))[::-1]
        self.refs = [0] * self.count
        self.kept.clear()
        self.key_of.clear()

    def available(self) -> int:
        return len(self.free) + sum(1 for block in self.kept.values() if self.refs[block] == 0)

    def take(self) -> int:
        if not self.free:  # give up the oldest kept block nobody holds
            key = next(key for key, block in self.kept.items() if self.refs[block] == 0)
            self.free.append(self.kept.pop(key))
            del self.key_of[self.free[-1]]
        block = self.free.pop()
        self.refs[block] = 1
        return block

    def hold(self, block: int) -> None:
        self.refs[block] += 1
        key = self.key_of.get(block)
        if key is not None:
            self.kept.move_to_end(key)

    def release(self, block: int) -> None:
        self.refs[block] -= 1
        if self.refs[block] == 0 and block not in self.key_of:
            self.free.append(block)

    def kept_prefix(self, prompt: list[int], limit: int) -> list[int]:
        """The kept blocks holding the first whole blocks of `prompt`, at most `limit` blocks."""
        blocks = []
        for index in range(limit):
            block = self.kept.get(tuple(prompt[:(index + 1) * self.size]))
            if block is None:
                break
            blocks.append(block)
        return blocks

    def keep(self, block: int, prompt: list[int], index: int) -> None:
        """Remember that `block` holds whole block number `index` of `prompt`, read as a prompt."""
        key = tuple(prompt[:(index + 1) * self.size])
        if key not in self.kept and block not in self.key_of:
            self.kept[key] = block
            self.key_of[block] = key

    def copy(self, source: int, target: int) -> None:
        for data in self.tensors:
            data[target] = data[source]


class _Row:
    """One candidate inside the batch: its cache blocks (in position order) and how many positions they hold."""

    def __init__(self, blocks: list[int], length: int):
        self.blocks = blocks
        self.length = length


class _Job:
    """One GenerationRequest inside a batcher: n candidates continuing one prompt.

    Once `_Batcher.run` has queued it, only the batcher thread works on it (reads the prompt, picks ids, calls
    the engine back); the writer's thread waits for `finished` and may set `closed` to cancel."""

    def __init__(self, request: GenerationRequest, picker: TokenPicker):
        self.request, self.picker = request, picker
        self.prompt, self.n, self.limit = list(request.prompt), request.n, request.settings.max_new_tokens
        self.rows: list[_Row] = []  # one reading row until the prompt is read, then n
        self.read = 0  # prompt positions whose keys and values are in the cache
        self.written = 0  # steps of ids picked
        self.next_ids: list[int] | None = None  # the ids to run at the next step
        self.spare: list[int] = []  # blocks taken for candidates 2..n until the prompt is read
        self.error: BaseException | None = None
        self.closed = False
        self.finished = threading.Event()  # set by the batcher once it has let go of the job


class _Batcher:
    """Runs one compiled model for every writer at once: one thread, one infer request, one block pool.

    The thread also picks every job's ids (`TokenPicker`) and calls the engine back (`on_tokens`) between
    steps (~0.7 ms a candidate), so a step needs no hand-over between threads."""

    def __init__(self, compiled, budget_bytes: int, name: str, blocks: int | None = None):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.pool = _Pool(compiled, self.request, budget_bytes, blocks)
        self.cond = threading.Condition()
        self.waiting: deque[_Job] = deque()  # not yet given cache blocks, in arrival order
        self.active: list[_Job] = []
        self.stopped = False
        self.steps = 0
        self.widest = 0  # the most sequences one step carried
        self.thread = threading.Thread(target=self._run, name=f"openvino-batcher-{name}", daemon=True)
        self.thread.start()

    # -- the writer's side (any thread) --

    def run(self, request: GenerationRequest) -> None:
        """Generate `request` in the batch; returns when it is finished, or at once (after the batcher has let go
        of it) when `request.cancelled()`."""
        job = _Job(request, TokenPicker(request))
        with self.cond:
            if self.stopped:
                raise BackendError("the openvino backend was closed")
            self.waiting.append(job)
            self.cond.notify_all()
        while not job.finished.wait(0.05):
            if not self.thread.is_alive():
                raise BackendError("the openvino backend's batcher stopped; restart the app")
            if request.cancelled():  # e.g. while the story is still waiting or being read
                with self.cond:
                    job.closed = True
                    self.cond.notify_all()
                job.finished.wait()
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join(timeout=10)

    # -- the batcher thread --

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception as error:  # noqa: BLE001  a bug here must not leave writers waiting forever
                log.exception("the openvino batcher failed; failing the turns in progress")
                with self.cond:
                    for job in list(self.waiting) + self.active:
                        job.error = BackendError(f"the openvino backend failed: {error}")
                        job.finished.set()
                    self.waiting.clear()
                    self.active.clear()
                    self.pool.reset()

    def _step(self) -> bool:
        """Run one step for every job with input; False once the batcher is closed."""
        with self.cond:
            while True:
                if self.stopped:
                    for job in list(self.waiting) + self.active:
                        job.error = job.error or BackendError("the openvino backend was closed")
                        job.finished.set()
                    return False
                self._admit()
                entries = self._step_entries()
                if entries:
                    break
                self.cond.wait()
        try:
            logits = self._infer(entries)
        except Exception as error:  # noqa: BLE001  handed to every writer in the step
            log.exception("openvino step failed")
            with self.cond:
                for job in {id(entry[0]): entry[0] for entry in entries}.values():
                    job.error = BackendError(f"the openvino backend failed: {error}")
                    job.closed = True
            return True
        with self.cond:
            served = self._deliver(entries, logits)
        for job, job_logits in served:
            self._advance(job, job_logits)
        return True

    def _advance(self, job: _Job, logits) -> None:
        """Pick the job's next ids and hand them to the engine; the job ends when every candidate is finished,
        at max_new_tokens, or on a cancel (on_tokens then says all are finished)."""
        try:
            ids = job.picker.pick(logits)
            done = job.request.on_tokens(ids)
            job.written += 1
            if all(done) or job.written >= job.limit:
                job.closed = True
            else:
                job.next_ids = ids
        except BaseException as error:  # noqa: BLE001  the writer's thread raises it
            job.error, job.closed = error, True

    def _blocks_needed(self, job: _Job, kept: int) -> int:
        size = self.pool.size
        total = -(-(len(job.prompt) + job.limit) // size)  # every block one candidate's positions need
        shared = len(job.prompt) // size  # whole prompt blocks: one copy for all candidates
        return total - kept + (job.n - 1) * (total - shared)

    def _admit(self) -> None:
        """Give waiting jobs their cache blocks, in arrival order, while the pool has room; free finished jobs."""
        for job in [job for job in self.active if job.closed]:
            self.active.remove(job)
            for block in [block for row in job.rows for block in row.blocks] + job.spare:
                self.pool.release(block)
            job.finished.set()
        while self.waiting:
            job = self.waiting[0]
            if job.closed:
                self.waiting.popleft()
                job.finished.set()
                continue
            size = self.pool.size
            kept = self.pool.kept_prefix(job.prompt, (len(job.prompt) - 1) // size)  # read >= 1 id: its logits
            need = self._blocks_needed(job, len(kept))
            if need + len(kept) > self.pool.count:
                self.waiting.popleft()
                job.error = BackendError(
                    f"the story and max_new_tokens need {need + len(kept)} KV cache blocks, more than the openvino "
                    f"backend's pool of {self.pool.count}; raise {KV_MB_ENV} (now {self.pool.count} blocks)")
                job.finished.set()
                continue
            for block in kept:  # held first, so taking fresh blocks cannot give them up
                self.pool.hold(block)
            if need > self.pool.available():
                for block in kept:
                    self.pool.release(block)
                return  # it waits for blocks; later jobs wait behind it
            self.waiting.popleft()
            total = -(-(len(job.prompt) + job.limit) // size)
            first = _Row(kept + [self.pool.take() for _ in range(total - len(kept))], len(kept) * size)
            job.rows = [first]
            job.read = job.request.cached_tokens = first.length
            job.spare = [self.pool.take() for _ in range(need - (total - len(kept)))]  # the other candidates' blocks
            self.active.append(job)

    def _step_entries(self) -> list[tuple]:
        """(job, row, ids, past length) for every sequence that has input now."""
        entries = []
        writing = any(job.read == len(job.prompt) for job in self.active if not job.closed)
        for job in self.active:
            if job.closed:
                continue
            if job.read < len(job.prompt):
                end = min(len(job.prompt), job.read + PREFILL_CHUNK) if writing else len(job.prompt)
                entries.append((job, 0, job.prompt[job.read:end], job.read))
            elif job.next_ids is not None:
                for index, row in enumerate(job.rows):
                    entries.append((job, index, [job.next_ids[index]], row.length))
                job.next_ids = None
        return entries

    def _infer(self, entries) -> "np.ndarray":
        size = self.pool.size
        lengths = [len(ids) for _, _, ids, _ in entries]
        begins = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        tables = [job.rows[row].blocks[:-(-(past + len(ids)) // size)] for job, row, ids, past in entries]
        inputs = {
            "input_ids": np.fromiter((i for _, _, ids, _ in entries for i in ids), dtype=np.int64),
            "position_ids": np.concatenate([np.arange(past, past + len(ids)) for _, _, ids, past in entries]),
            "logits_indices": (begins[1:] - 1).astype(np.int64),
            "past_lens": np.array([past for *_, past in entries], dtype=np.int32),
            "subsequence_begins": begins,
            "block_indices": np.concatenate(tables).astype(np.int32),
            "block_indices_begins": np.concatenate([[0], np.cumsum([len(t) for t in tables])]).astype(np.int32),
            "max_context_len": np.array(max(past + len(ids) for _, _, ids, past in entries), dtype=np.int32),
        }
        logits = self.request.infer(inputs)["logits"]
        self.steps += 1
        self.widest = max(self.widest, len(entries))
        return np.array(logits)

    def _deliver(self, entries, logits) -> list[tuple[_Job, "np.ndarray"]]:
        """Book the step: each job's rows' logits [n, vocab]; a job whose prompt is now read fans out into its n
        candidates."""
        served: dict[int, _Job] = {}
        rows: dict[int, dict[int, "np.ndarray"]] = {}
        size = self.pool.size
        for (job, row, ids, past), row_logits in zip(entries, logits):
            if job.closed:
                continue
            if job.read < len(job.prompt):  # a piece of the prompt was read
                job.read = job.rows[0].length = past + len(ids)
                for index in range(past // size, job.read // size):  # whole blocks read as prompt: keep them
                    if index * size >= job.request.cached_tokens:
                        self.pool.keep(job.rows[0].blocks[index], job.prompt, index)
                if job.read == len(job.prompt):
                    self._fan_out(job)
                    rows[id(job)] = {index: row_logits for index in range(job.n)}
                    served[id(job)] = job
            else:
                job.rows[row].length += 1
                rows.setdefault(id(job), {})[row] = row_logits
                served[id(job)] = job
        return [(job, np.stack([rows[key][index] for index in range(job.n)])) for key, job in served.items()]

    def _fan_out(self, job: _Job) -> None:
        """Candidates 2..n share the read prompt's whole blocks and get a copy of its last, partial one."""
        first, size = job.rows[0], self.pool.size
        shared = len(job.prompt) // size
        own = len(first.blocks) - shared
        for _ in range(job.n - 1):
            blocks = first.blocks[:shared] + [job.spare.pop() for _ in range(own)]
            for block in first.blocks[:shared]:
                self.pool.hold(block)
            if len(job.prompt) % size:
                self.pool.copy(first.blocks[shared], blocks[shared])
            job.rows.append(_Row(blocks, len(job.prompt)))


class OpenVinoBackend(Backend):
    """int8 (or fp32) GPT-2 on the OpenVINO CPU runtime; requests run at the same time, in one batch, each streaming."""

    name = "openvino"
    unsupported_settings = frozenset()
    concurrent = True

    def __init__(self, variants: dict[str | None, object], *, context_window: int, vocab_size: int, precision: str,
                 kv_megabytes: int | None = None, kv_blocks: int | None = None):
        """kv_blocks (tests) sets the pool's size in blocks instead of kv_megabytes / $RELAY_OPENVINO_KV_MB."""
        budget = (kv_megabytes or int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)) * 1024 * 1024
        self._batchers = {name: _Batcher(compiled, budget, name or "base", kv_blocks)
                          for name, compiled in variants.items()}
        self.context_window = context_window
        self.vocab_size = vocab_size
        self.precision = precision

    @classmethod
    def from_model(cls, model, *, source: str = "", adapters: dict[str, str] | None = None,
                   precision: str | None = None, cache: Path | None = None,
                   kv_blocks: int | None = None) -> "OpenVinoBackend":
        """Convert (or load from the cache) a transformers GPT-2 and one merged copy per LoRA adapter.

        `model` is the plain base model (adapters are merged here from their folders)."""
        import openvino as ov

        precision = precision or os.environ.get(PRECISION_ENV, "int8")
        if precision not in PRECISIONS:
            raise BackendError(f"{PRECISION_ENV} must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if hasattr(model, "peft_config"):
            raise BackendError("pass the base model without adapters; the openvino backend merges them itself")
        try:
            megabytes = int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)
        except ValueError:
            megabytes = 0
        if megabytes < 1:
            raise BackendError(f"{KV_MB_ENV} must be a whole number of megabytes (default {DEFAULT_KV_MB}); "
                               f"got {os.environ.get(KV_MB_ENV)!r}")
        _check_supported(model)
        core = ov.Core()
        properties = {"PERFORMANCE_HINT": "LATENCY"}
        if precision == "fp32":  # exact: no bf16 arithmetic, no 8-bit KV cache, no dynamic int8 activations
            properties.update({"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32",
                               "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"})

        def compiled(weights):
            return core.compile_model(paged(core.read_model(cached_model_path(weights, precision, cache))), "CPU",
                                      properties)

        variants = {None: compiled(model)}
        for name, path in (adapters or {}).items():
            merged = load_adapters(copy.deepcopy(model), {name: path}).merge_and_unload()  # checked by the engine
            variants[name] = compiled(merged)
            del merged
        config = model.config
        return cls(variants, context_window=int(config.n_positions), vocab_size=int(config.vocab_size),
                   precision=precision, kv_megabytes=megabytes, kv_blocks=kv_blocks)

    def stats(self) -> dict:
        """Steps run and the most sequences one step carried, over every model variant (for tests and benchmarks)."""
        return {"steps": sum(b.steps for b in self._batchers.values()),
                "widest_step": max(b.widest for b in self._batchers.values())}

    def generate(self, request: GenerationRequest) -> None:
        batcher = self._batchers.get(request.adapter)
        if batcher is None:
            raise BackendError(f"adapter {request.adapter!r} was not converted for the openvino backend")
        batcher.run(request)

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
