"""ragas as an extra: string similarity, ROUGE-L and non-LLM context precision/recall, and with a
judge (any raftkit generator: a local HF model or an OpenAI-compatible server) faithfulness and
answer correctness. ragas' own RunConfig bounds each call; a failure is reported and never sinks the
report.
"""

from __future__ import annotations

import logging
import math

from raftkit.compare.config import CompareConfig, SystemConfig
from raftkit.compare.scoring import ScoredRow
from raftkit.ui import say


def judge_llm(cfg: CompareConfig):
    """A ragas LLM for the configured judge (`scoring.judge`), or None."""
    j = cfg.scoring.judge
    if j.kind == "none":
        return None
    from langchain_core.outputs import Generation, LLMResult
    from ragas.llms.base import BaseRagasLLM

    from raftkit.generate import make_generator
    from raftkit.models import runtime

    backend = "openai" if j.kind == "openai" else "hf"
    gcfg = cfg.generation.model_copy(
        update={
            "model": j.model,
            "backend": backend,
            "base_url": j.base_url,
            "api_key_env": j.api_key_env,
            "temperature": 0.0,
        }
    )
    gen = make_generator(gcfg, runtime(cfg.runtime))

    class RaftkitJudge(BaseRagasLLM):
        def generate_text(self, prompt, n=1, temperature=0.01, stop=None, callbacks=None):
            text = gen.chat([[{"role": "user", "content": prompt.to_string()}]], desc="judging")[0]
            return LLMResult(generations=[[Generation(text=text)]])

        async def agenerate_text(self, prompt, n=1, temperature=0.01, stop=None, callbacks=None):
            return self.generate_text(prompt, n, temperature, stop, callbacks)

        def is_finished(self, response):
            return True

    return RaftkitJudge()


def _local_embeddings(cfg: CompareConfig):
    """The offline default embedder as ragas embeddings (langchain interface)."""
    from langchain_core.embeddings import Embeddings
    from ragas.embeddings import LangchainEmbeddingsWrapper

    from raftkit.models import runtime
    from raftkit.retrieval.config import EmbeddingConfig
    from raftkit.retrieval.embedding import Embedder

    embedder = Embedder(EmbeddingConfig(), runtime(cfg.runtime))

    class Local(Embeddings):
        def embed_documents(self, texts):
            return embedder.encode(list(texts)).tolist()

        def embed_query(self, text):
            return embedder.encode([text])[0].tolist()

    return LangchainEmbeddingsWrapper(Local())


def _metrics(rag: bool, llm, cfg: CompareConfig) -> dict:
    from ragas.metrics import (
        AnswerCorrectness,
        Faithfulness,
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        NonLLMStringSimilarity,
        RougeScore,
    )

    metrics = {"ragas_string_similarity": NonLLMStringSimilarity(), "ragas_rouge_l": RougeScore()}
    if rag:
        metrics.update(
            ragas_context_precision=NonLLMContextPrecisionWithReference(),
            ragas_context_recall=NonLLMContextRecall(),
        )
    if llm is not None:
        # Factual part only (weights 1, 0); ragas still wants embeddings, so hand it the local
        # embedder rather than let it build an OpenAI client.
        metrics["ragas_answer_correctness"] = AnswerCorrectness(
            llm=llm, embeddings=_local_embeddings(cfg), weights=[1.0, 0.0]
        )
        if rag:
            metrics["ragas_faithfulness"] = Faithfulness(llm=llm)
    return metrics


def _evaluate(samples: list[dict], rag: bool, llm, cfg: CompareConfig) -> list[dict]:
    import warnings

    from ragas import EvaluationDataset, RunConfig, evaluate

    metrics = _metrics(rag, llm, cfg)
    run = RunConfig(
        timeout=cfg.scoring.ragas_timeout_s, max_retries=1, max_workers=4, seed=cfg.bootstrap.seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(
            EvaluationDataset.from_list(samples),
            metrics=list(metrics.values()),
            run_config=run,
            show_progress=False,
            raise_exceptions=False,
        )
    frame = result.to_pandas()
    # Score columns follow the sample columns in metric order; their names carry options
    # ("rouge_score(mode=...)").
    columns = list(frame.columns[-len(metrics) :])
    return [
        {ours: float(frame.iloc[i][col]) for ours, col in zip(metrics, columns)}
        for i in range(len(samples))
    ]


def add_ragas(
    rows: list[ScoredRow],
    system: SystemConfig,
    contexts: dict[str, list[str]],
    references: dict[str, list[str]],
    cfg: CompareConfig,
    llm=None,
) -> str:
    """Add ragas scores to the answerable rows in place; returns '' or a note on what is missing and
    why."""
    logging.getLogger("ragas").setLevel(logging.CRITICAL)
    rag = system.mode == "rag"
    keep = [
        r
        for r in rows
        if r.answerable
        and r.reference is not None
        and (not rag or (contexts.get(r.qid) and references.get(r.qid)))
    ]
    if not keep:
        return ""
    samples = [
        {
            "user_input": r.question,
            "response": r.answer,
            "reference": r.reference,
            **(
                {"retrieved_contexts": contexts[r.qid], "reference_contexts": references[r.qid]}
                if rag
                else {}
            ),
        }
        for r in keep
    ]
    try:
        scores = _evaluate(samples, rag, llm, cfg)
    except Exception as e:  # an extra metric must never sink the report
        say(f"{system.name}: ragas skipped ({type(e).__name__}: {e})")
        return f"ragas metrics are missing for {system.name} ({type(e).__name__})."
    for r, s in zip(keep, scores):
        r.ragas.update(s)
    judged = ("ragas_answer_correctness", "ragas_faithfulness")
    if llm is not None and all(math.isnan(r.ragas.get(k, math.nan)) for r in keep for k in judged):
        return (
            f"the judge gave no usable verdict for {system.name} (every judged score is NaN: "
            f"a small judge rarely writes the JSON ragas parses)."
        )
    return ""
