"""The reference backend: transformers `generate` in PyTorch (fp32 on CPU, fp16 on a GPU), PEFT adapters live.

Every other backend is tested against this one. Token probabilities are recorded by a last LogitsProcessor:
generate applies the repetition penalty, then our processors (the engine's rules, this one last), and only then
the temperature and the top-k/top-p/typical cut, so it sees exactly the scores the definition names
(docs/engine.md); the temperature is applied in `step_probs`. It generates one request at a time (the engine keeps its
arrival-order lock for it): `torch.manual_seed` is process-wide, so a seeded request must not share the
random generator with another one.
"""

from __future__ import annotations

import contextlib

from relay.backends.base import Backend, GenerationRequest, logits_processors, step_probs


class TransformersBackend(Backend):
    """transformers `generate` with the engine's logits rules and a stopping criterion that feeds the engine."""

    name = "transformers"
    unsupported_settings = frozenset()
    concurrent = False

    def __init__(self, model, tokenizer, device: str):
        config = model.config
        self.model = model
        self.device = device
        self.context_window = int(getattr(config, "n_positions", None) or config.max_position_embeddings)
        self.vocab_size = int(config.vocab_size)
        self._eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config.eos_token_id
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_id
        self._adapter_names = list(getattr(model, "peft_config", {}) or {})

    def _adapter_scope(self, adapter: str | None):
        """Select an adapter, or switch adapters off entirely so the base model's output is exact."""
        if not self._adapter_names:
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def generate(self, request: GenerationRequest) -> None:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        settings, n, prompt = request.settings, request.n, request.prompt
        sampling = settings.temperature > 0
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_k=settings.top_k if sampling else None,
            top_p=settings.top_p if sampling else None,
            typical_p=settings.typical_p if sampling else None,
            repetition_penalty=settings.repetition_penalty,
            eos_token_id=self._eos_id, pad_token_id=self._pad_id, bos_token_id=self._eos_id,
            use_cache=True,
        )
        never = torch.tensor(request.never_ids, dtype=torch.long)
        ends = torch.tensor(request.paragraph_end_ids, dtype=torch.long)
        start = request.continuation_start if request.continuation_start is not None else len(prompt)
        processors = logits_processors(settings, start, request, never, ends)
        scored = []  # the step's scores as the sampler gets them, before the temperature
        if request.records:
            from transformers import LogitsProcessor

            class _Record(LogitsProcessor):
                def __call__(self, input_ids, scores):
                    scored[:] = [scores]  # later warpers return new tensors: this one stays as it is
                    return scores

            processors.append(_Record())

        class _FeedEngine(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                if scored:
                    request.on_probs(step_probs(scored.pop(), settings.temperature, input_ids[:, -1]))
                done = request.on_tokens(input_ids[:, -1].tolist())
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        input_ids = torch.tensor([prompt] * n, dtype=torch.long, device=self.device)
        with torch.inference_mode(), self._adapter_scope(request.adapter):
            shared = {}
            if n > 1 and len(prompt) > 1:
                # The n candidates share the story: read it once and copy its cache n times, instead of letting
                # generate read it n times (for 3 candidates of a 900-token story that is most of the wait).
                cache = self.model(input_ids=input_ids[:1, :-1], use_cache=True)["cache"]
                cache.batch_repeat_interleave(n)
                shared["cache"] = cache
            torch.manual_seed(request.seed)  # the engine's lock keeps other generations off the RNG meanwhile
            self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config,
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([_FeedEngine()]), **shared,
            )
