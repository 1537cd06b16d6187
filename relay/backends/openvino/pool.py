"""The KV cache: one pool of blocks per compiled model, and who holds which block.

The paged graph reads every sequence's keys and values from fixed-size blocks of one pool (key_cache.i /
value_cache.i), bound once to the model's infer request. A candidate holds the blocks of its positions;
candidates of one request share the blocks of their common prompt. Kept story caches: whole blocks of a
prompt, once read, stay in the pool keyed by the ids they hold up to their end (and the adapter that read them:
the LoRA graph's pool serves every adapter, and a block read under one holds other keys and values than under
another), until the space is needed, so a new turn of the same story starts from them and reads only the new
text. So does a copy of a prompt's last, partly filled block (its `tail`): the next turn, a swipe or a retry
copies the kept block that holds the most of the first ids of its next block (`kept_part`) and reads on from
there (the keys and values are quantized position by position, so a block read in two pieces holds the same
bytes as one read at once). A few more blocks, `scratch`, are never handed out: the batcher's padding rows write
there (see _Batcher._infer).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

KV_MB_ENV = "RELAY_OPENVINO_KV_MB"  # the KV cache pool of each model variant, in MB
DEFAULT_KV_MB = 256  # KoGPT-2 int8: ~20.7 KB per position, so ~12,900 positions (12 full 1,024-token windows)
MAX_BLOCKS = 8192  # a tiny model's blocks are small; no use in more
SCRATCH_POSITIONS = 127  # the longest padding row (see _Batcher._infer)


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
        self.count = count or max(8, min(MAX_BLOCKS, budget_bytes // block_bytes))  # blocks for candidates
        self.size = compiled.input("value_cache.0").get_partial_shape()[2].get_length()  # positions per block
        # The blocks after them: for padding rows, never handed out.
        self.scratch = list(range(self.count, self.count + -(-SCRATCH_POSITIONS // self.size)))
        self._bound = []  # (input name, tensor)
        for port in ports:
            shape = port.get_partial_shape()
            tensor = ov.Tensor(port.get_element_type(),
                               [self.count + len(self.scratch)] + [shape[i].get_length() for i in (1, 2, 3)])
            self._bound.append((port.get_any_name(), tensor))
        self.tensors = [tensor.data for _, tensor in self._bound]
        self.bind(request)
        self.free: list[int] = []
        self.refs: list[int] = []
        self.kept: OrderedDict[tuple, int] = OrderedDict()  # (adapter, prompt ids up to a block's end) -> the block
        self.key_of: dict[int, tuple] = {}
        self.tails: dict[tuple, tuple] = {}  # (adapter, prompt ids of whole blocks) -> the key of the tail after them
        self.idle = 0  # kept blocks nobody holds (counted as they change: the pool may keep hundreds)
        self.reset()

    def bind(self, request) -> None:
        """Give `request` (of this graph, compiled with any settings that keep the cache's types) these blocks."""
        for name, tensor in self._bound:
            request.set_tensor(name, tensor)

    def reset(self) -> None:
        """Every block free, nothing kept (after a failure left the books in doubt)."""
        self.free = list(range(self.count))[::-1]
        self.refs = [0] * self.count
        self.kept.clear()
        self.key_of.clear()
        self.tails.clear()
        self.idle = 0

    def available(self) -> int:
        """Blocks `take` can give: free ones and kept ones nobody holds."""
        return len(self.free) + self.idle

    def take(self) -> int:
        if not self.free:  # give up the oldest kept block nobody holds
            self._forget(next(key for key, block in self.kept.items() if self.refs[block] == 0))
        block = self.free.pop()
        self.refs[block] = 1
        return block

    def hold(self, block: int) -> None:
        self.refs[block] += 1
        key = self.key_of.get(block)
        if key is not None:
            self.kept.move_to_end(key)
            if self.refs[block] == 1:
                self.idle -= 1

    def release(self, block: int) -> None:
        self.refs[block] -= 1
        if self.refs[block] == 0:
            if block in self.key_of:
                self.idle += 1
            else:
                self.free.append(block)

    def _forget(self, key: tuple) -> None:
        """Free the kept block of `key` (nobody holds it)."""
        block = self.kept.pop(key)
        del self.key_of[block]
        self.idle -= 1
        adapter, ids = key
        whole = (adapter, ids[:len(ids) - len(ids) % self.size])
        if self.tails.get(whole) == key:
            del self.tails[whole]
        self.free.append(block)

    def kept_prefix(self, prompt: list[int], limit: int, adapter: str | None = None) -> list[int]:
        """The kept blocks holding the first whole blocks of `prompt` as `adapter` read it, at most `limit` blocks."""
        blocks = []
        for index in range(limit):
            block = self.kept.get((adapter, tuple(prompt[:(index + 1) * self.size])))
            if block is None:
                break
            blocks.append(block)
        return blocks

    def kept_part(self, prompt: list[int], index: int, most: int,
                  adapter: str | None = None) -> tuple[int, int] | None:
        """A kept block whose first positions hold the first ids of block number `index` of `prompt` as `adapter`
        read it (the blocks before it being kept too), as many as it has up to `most`: (block, positions), or
        None. A kept whole block serves too: a retry or swipe of a prompt that ends on a block's end."""
        start = index * self.size
        if most <= 0:
            return None
        end = start + self.size
        whole = self.kept.get((adapter, tuple(prompt[:end]))) if len(prompt) >= end else None
        if whole is not None:
            return whole, min(self.size, most)
        key = self.tails.get((adapter, tuple(prompt[:start])))
        if key is None:
            return None
        tail = key[1][start:]
        if tuple(prompt[start:start + len(tail)]) != tail:
            return None
        return self.kept[key], min(len(tail), most)

    def keep(self, block: int, prompt: list[int], index: int, adapter: str | None = None) -> None:
        """Remember that `block` holds whole block number `index` of `prompt`, read as a prompt with `adapter`."""
        self._remember(block, (adapter, tuple(prompt[:(index + 1) * self.size])))

    def keeps_tail(self, prompt: list[int], adapter: str | None = None) -> bool:
        """Whether `prompt`'s last, partly filled block is kept already."""
        return (adapter, tuple(prompt)) in self.kept

    def keep_tail(self, block: int, prompt: list[int], adapter: str | None = None) -> None:
        """Remember that `block` (a copy nobody writes to) holds the positions of `prompt`'s last, partly filled
        block, read as a prompt with `adapter`; it replaces an older tail after the same whole blocks."""
        whole = (adapter, tuple(prompt[:len(prompt) - len(prompt) % self.size]))
        older = self.tails.get(whole)
        if older is not None and self.refs[self.kept[older]] == 0:
            self._forget(older)
        key = (adapter, tuple(prompt))
        if self._remember(block, key):
            self.tails[whole] = key

    def _remember(self, block: int, key: tuple) -> bool:
        if key in self.kept or block in self.key_of:
            return False
        self.kept[key] = block
        self.key_of[block] = key
        if self.refs[block] == 0:
            self.idle += 1
        return True

    def copy(self, source: int, target: int) -> None:
        for data in self.tensors:
            data[target] = data[source]
