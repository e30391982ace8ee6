"""From raw records to scored rows and per-system summaries with bootstrap intervals (and ragas extras).

*Accuracy* is the primary score of a question: the log-likelihood pick when the question has choices
(and scoring.mc is loglik or both), the generated choice when scoring.mc is generate, otherwise the open
answer being correct (exact match or the reference as whole words inside the answer span).
"""

from __future__ import annotations

import logging
import math
import threading

from raftkit.compare import freshness, hallucination
from raftkit.compare.config import CompareConfig, SystemConfig
from raftkit.compare.questions import Question
from raftkit.compare.scoring import (bootstrap_ci, generated_choice, is_abstention, loglik_pick, mean,
                                     open_scores)
from raftkit.ui import say

DEFINITIONS = {
    "accuracy": "Primary correctness over answerable questions: the highest log-likelihood choice when the "
                "question has choices (Ovadia et al. 2023), else the open answer is correct (exact match, or the "
                "normalised reference occurs as whole words in the normalised answer span).",
    "em": "SQuAD exact match of the <ANSWER>: span (lower case, no punctuation or articles).",
    "f1": "SQuAD token F1 of the <ANSWER>: span against the reference.",
    "substring": "The normalised reference occurs as whole words in the normalised <ANSWER>: span.",
    "mc_loglik_accuracy": "Multiple choice: the choice with the highest summed log-probability of "
                          "'<ANSWER>: <choice>' after the system's prompt is the right one.",
    "mc_generated_accuracy": "Multiple choice: the choice the generated answer names (its text, or a bare "
                             "letter) is the right one.",
    **hallucination.DEFINITIONS,
    **freshness.DEFINITIONS,
    "ragas_string_similarity": "ragas NonLLMStringSimilarity (1 - normalised Levenshtein distance) of answer "
                               "span and reference.",
    "ragas_rouge_l": "ragas RougeScore (ROUGE-L F-measure) of answer span and reference.",
    "ragas_context_precision": "ragas NonLLMContextPrecisionWithReference: average precision of retrieved chunks "
                               "that resemble (Levenshtein similarity >= 0.5) a chunk of the evidence documents.",
    "ragas_context_recall": "ragas NonLLMContextRecall: share of evidence chunks resembled by a retrieved chunk.",
    "ragas_faithfulness": "ragas Faithfulness (judge LLM): share of the answer's claims supported by the context.",
    "ragas_answer_correctness": "ragas AnswerCorrectness (judge LLM, factual part only).",
}


def score_record(q: Question, rec: dict, system: SystemConfig, mc: str) -> dict:
    """One scored row (per_question.csv) of system `system` on question `q` from its raw record."""
    answer = rec["answer"]
    mcq = bool(q.choices) and q.answer_index is not None
    ll_pick = loglik_pick(rec["loglik"]) if rec.get("loglik") else None
    gen_pick = generated_choice(answer, q.choices) if q.choices else None
    opened = open_scores(answer, q.answer) if q.answer is not None and q.answerable else None
    ll_ok = (ll_pick == q.answer_index) if mcq and ll_pick is not None else None
    gen_ok = (gen_pick == q.answer_index) if mcq else None
    if mcq and ll_ok is not None and mc in ("loglik", "both"):
        correct, primary = ll_ok, "loglik"
    elif mcq and mc == "generate":
        correct, primary = gen_ok, "generate"
    else:
        correct, primary = (bool(opened["correct"]) if opened else None), "open"
    gen_correct = bool(opened["correct"]) if opened else gen_ok
    stale = None
    if q.status == "changed" and q.answerable:
        stale = (freshness.is_stale_mc(ll_pick if primary == "loglik" else gen_pick, q.answer_index_v1)
                 if primary != "open" else freshness.is_stale_open(answer, q.answer_v1, q.answer))
    if not q.answerable:
        correct = gen_correct = ll_ok = gen_ok = None
    return {
        "system": system.name, "qid": q.id, "question": q.question,
        "status": "unanswerable" if q.holdout else q.status, "holdout": q.holdout, "answerable": q.answerable,
        "reference": q.answer, "answer": answer, "abstained": is_abstention(answer),
        "correct": correct, "primary": primary, "gen_correct": gen_correct,
        "em": opened["em"] if opened else None, "f1": opened["f1"] if opened else None,
        "substring": opened["substring"] if opened else None,
        "mc_loglik_pick": ll_pick, "mc_loglik_correct": ll_ok, "mc_generated_pick": gen_pick,
        "mc_generated_correct": gen_ok, "stale": stale,
        "quotes": rec["quotes"], "quotes_unsupported": rec["quotes_unsupported"],
        "retrieved": rec["retrieved"], "retrieved_doc_ids": rec.get("retrieved_doc_ids", []), "reply": rec["reply"],
    }


def _stat(value: float | None, values: list[float], cfg: CompareConfig) -> dict:
    b = cfg.bootstrap
    ci = bootstrap_ci(values, b.samples, b.seed, b.level) if values else None
    return {"value": value, "ci": list(ci) if ci else None, "n": len(values)}


def _column(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None and r["answerable"]
            and not (isinstance(r[key], float) and math.isnan(r[key]))]


def summarize(rows: list[dict], cfg: CompareConfig) -> dict:
    """{metric: {value, ci, n}} of one system's rows (metrics with no qualifying question are left out)."""
    out = {}
    for key, col in (("accuracy", "correct"), ("em", "em"), ("f1", "f1"), ("substring", "substring"),
                     ("mc_loglik_accuracy", "mc_loglik_correct"), ("mc_generated_accuracy", "mc_generated_correct")):
        values = _column(rows, col)
        if values:
            out[key] = _stat(mean(values), values, cfg)
    for key, fn in hallucination.METRICS.items():
        value, values = fn(rows)
        if values:
            out[key] = _stat(value, values, cfg)
    if cfg.freshness.enable and any(r["status"] in ("changed", "added") for r in rows):
        for status, (value, values) in freshness.accuracy_by_status(rows).items():
            if values:
                out[f"accuracy_{status}"] = _stat(value, values, cfg)
        value, values = freshness.stale_rate(rows)
        if values:
            out["stale_rate"] = _stat(value, values, cfg)
    for key in sorted({k for r in rows for k in r if k.startswith("ragas_")}):
        values = _column(rows, key)
        if values:
            out[key] = _stat(mean(values), values, cfg)
    return out


# ----------------------------------------------------------------------------- ragas
def judge_llm(cfg: CompareConfig):
    """A ragas LLM for the configured judge, or None."""
    j = cfg.scoring.judge
    if j.kind == "openai":
        import os

        from langchain_openai import ChatOpenAI
        from ragas.llms import LangchainLLMWrapper

        return LangchainLLMWrapper(ChatOpenAI(model=j.model, base_url=j.base_url, temperature=0,
                                              api_key=os.environ.get(j.api_key_env) or "none"))
    if j.kind == "hf":
        from dataclasses import replace

        from langchain_core.outputs import Generation, LLMResult
        from ragas.llms.base import BaseRagasLLM

        from raftkit.generate import make_generator

        gen = make_generator(replace(cfg.generation, model=j.model, backend="hf", temperature=0.0))

        class HFJudge(BaseRagasLLM):
            def generate_text(self, prompt, n=1, temperature=0.01, stop=None, callbacks=None):
                text = gen.chat([[{"role": "user", "content": prompt.to_string()}]], desc="judging")[0]
                return LLMResult(generations=[[Generation(text=text)]])

            async def agenerate_text(self, prompt, n=1, temperature=0.01, stop=None, callbacks=None):
                return self.generate_text(prompt, n, temperature, stop, callbacks)

            def is_finished(self, response):
                return True

        return HFJudge()
    return None


def _local_embeddings():
    """The offline default embedder as ragas embeddings (langchain interface)."""
    from langchain_core.embeddings import Embeddings
    from ragas.embeddings import LangchainEmbeddingsWrapper

    from raftkit.config import EmbeddingConfig
    from raftkit.retrieval.embedding import Embedder

    embedder = Embedder(EmbeddingConfig())

    class Local(Embeddings):
        def embed_documents(self, texts):
            return embedder.encode(list(texts)).tolist()

        def embed_query(self, text):
            return embedder.encode([text])[0].tolist()

    return LangchainEmbeddingsWrapper(Local())


def _ragas_once(samples: list[dict], rag: bool, llm) -> list[dict]:
    from ragas import EvaluationDataset, evaluate
    from ragas.metrics import (AnswerCorrectness, Faithfulness, NonLLMContextPrecisionWithReference,
                               NonLLMContextRecall, NonLLMStringSimilarity, RougeScore)

    metrics = {"ragas_string_similarity": NonLLMStringSimilarity(), "ragas_rouge_l": RougeScore()}
    if rag:
        metrics.update(ragas_context_precision=NonLLMContextPrecisionWithReference(),
                       ragas_context_recall=NonLLMContextRecall())
    if llm is not None:
        # Factual part only (weights 1, 0); ragas still wants embeddings, so hand it the local embedder
        # rather than let it build an OpenAI client.
        metrics["ragas_answer_correctness"] = AnswerCorrectness(llm=llm, embeddings=_local_embeddings(),
                                                                weights=[1.0, 0.0])
        if rag:
            metrics["ragas_faithfulness"] = Faithfulness(llm=llm)
    result = evaluate(EvaluationDataset.from_list(samples), metrics=list(metrics.values()), show_progress=False,
                      raise_exceptions=False)
    frame = result.to_pandas()
    # Score columns follow the sample columns in metric order; their names carry options ("rouge_score(mode=...)").
    columns = list(frame.columns[-len(metrics):])
    return [{ours: float(frame.iloc[i][col]) for ours, col in zip(metrics, columns)} for i in range(len(samples))]


def add_ragas(rows: list[dict], system: SystemConfig, contexts: dict[str, list[str]],
              references: dict[str, list[str]], cfg: CompareConfig, llm=None) -> bool:
    """Add ragas_* scores to the answerable rows in place; False when ragas failed or ran past its timeout."""
    import os
    import warnings

    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    logging.getLogger("ragas").setLevel(logging.CRITICAL)
    rag = system.mode == "rag"
    keep = [r for r in rows if r["answerable"] and r["reference"] is not None
            and (not rag or (contexts.get(r["qid"]) and references.get(r["qid"])))]
    if not keep:
        return True
    samples = [{"user_input": r["question"], "response": r["answer"], "reference": r["reference"],
                **({"retrieved_contexts": contexts[r["qid"]], "reference_contexts": references[r["qid"]]}
                   if rag else {})} for r in keep]
    box: dict = {}

    def work():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                box["scores"] = _ragas_once(samples, rag, llm)
        except Exception as e:  # an extra metric must never sink the report
            box["error"] = f"{type(e).__name__}: {e}"

    # A daemon thread: a hung ragas call is abandoned at the timeout instead of blocking the report.
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(cfg.scoring.ragas_timeout_s)
    if "scores" not in box:
        say(f"{system.name}: ragas skipped ({box.get('error', f'over {cfg.scoring.ragas_timeout_s}s')})")
        return False
    for r, scores in zip(keep, box["scores"]):
        r.update(scores)
    return True
