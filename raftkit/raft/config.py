"""The schema of `raftkit build-dataset`: shared retrieval/generation/runtime sections plus RAFT's
own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raftkit.config import GenerationConfig, RuntimeConfig, Section
from raftkit.retrieval.config import RetrievalConfig


class QuestionsConfig(Section):
    source: Literal["generate", "spans"] = Field(
        "generate",
        description="generate = the generator asks per_chunk questions of each chunk; spans = "
        "fill-in-the-blank questions about the numbers, dates, versions and names of each chunk's "
        "sentences, answered from the sentence (raftkit/raft/spans.py): no model",
    )
    per_chunk: int = Field(
        3,
        ge=1,
        description="questions asked of each chunk (RAFT's reference generator asks 5)",
    )
    dedup_threshold: float = Field(
        0.9,
        gt=0,
        le=1,
        description="cosine similarity above which two questions of one chunk count as one",
    )
    # a few short questions; CPU time is the budget
    max_new_tokens: int = Field(
        96, ge=8, description="most tokens the generator writes for one chunk's questions"
    )
    max_chunks: int = Field(
        0, ge=0, description="ask only the first N chunks (a quick trial); 0 = every chunk"
    )


class AnswersConfig(Section):
    # one quote, one line of reasoning, the answer
    max_new_tokens: int = Field(128, ge=8, description="most tokens of a generated answer")
    on_bad_quote: Literal["repair", "drop"] = Field(
        "repair",
        description="an answer whose quote is not in the oracle chunk: repair = swap in the oracle"
        " sentence it meant; drop = discard it",
    )
    min_overlap: float = Field(
        0.3,
        ge=0,
        le=1,
        description="a repair needs this share of the quote's words in one oracle sentence, else"
        " the answer is dropped",
    )
    max_answer_words: int = Field(
        30,
        ge=1,
        description="a derived or overlong answer is cut to this many words; the reference answer"
        " stays short",
    )
    rejected: Literal["derive", "generate"] = Field(
        "derive",
        description="the `rejected` answer of preference pairs: derive = a distractor sentence and"
        " a wrong answer, no model; generate = the model answers from a distractor",
    )


class QAConfig(Section):
    """How a `--qa` file is read (the ../shared/benchmarks format)."""

    answer_field: str = Field(
        "answer",
        description="the column that holds the answer, e.g. answer_v1 for the demo's v1 documents",
    )
    answers: Literal["given", "generate"] = Field(
        "given",
        description="given = a deterministic chain of thought around the given answer, no model;"
        " generate = ask the model",
    )
    require_answer_in_docs: bool = Field(
        True,
        description="skip lines whose answer is not in their documents (set false for yes/no QA)",
    )

    def check(self) -> list[str]:
        return [] if self.answer_field.strip() else ["answer_field must not be empty"]


class AssemblyConfig(Section):
    num_distractors: int = Field(
        4, ge=0, description="distractor chunks per example (k, as in the RAFT paper's recipe)"
    )
    oracle_p: float = Field(
        0.8, ge=0, le=1, description="share of examples that keep the oracle chunk (P in RAFT)"
    )
    distractors: Literal["random", "hard"] = Field(
        "hard",
        description="random = chunks of other documents at random; hard = the nearest chunks of"
        " other documents, like retrieval at test time",
    )
    absent_target: Literal["memorize", "abstain"] = Field(
        "abstain",
        description="the target of an example without its oracle: memorize = the answer anyway;"
        " abstain = the refusal (matches the shared system prompt)",
    )
    # a confident answer quoting a distractor teaches grounding; the refusal teaches not to refuse
    # when the evidence is there. An example without its oracle and an abstain target rejects a
    # confident answer from a distractor.
    rejected_with_oracle: Literal["distractor", "refusal"] = Field(
        "distractor",
        description="`rejected` of an example that shows its oracle: distractor = a confident"
        " answer quoting a distractor; refusal = the refusal",
    )
    # with `quote` an answered target also says its quote answers, so the answer-or-refuse decision
    # comes after the evidence was looked at instead of at the reply's first token
    refusal: Literal["plain", "quote"] = Field(
        "plain",
        description="how a refusal target reads: plain = the refusal line alone; quote = first the"
        " shown sentence closest to the question, then that it does not answer",
    )
    contrast: bool = Field(
        False,
        description="each question gives two examples, with its oracle and with a filler in its"
        " place (same distractors and order); oracle_p is then ignored (0.5)",
    )
    eval_fraction: float = Field(
        0.2, ge=0, lt=1, description="share of documents held out for the eval split"
    )
    seed: int = Field(
        0, description="seed of the eval split, the distractors, the oracle draws and the shuffles"
    )


class GateConfig(Section):
    # 0.15: on two RealTimeQA slices it refused 8-12% of held-out answerable questions and let
    # 33-38% of evidence-absent ones through (0.10: 7-8% and 40-43%)
    over_refusal: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="the evidence gate calibrated on the train-split questions: the share of"
        " answerable ones it may refuse; 0 = no gate; only for absent_target abstain",
    )


class RaftBuildConfig(Section):
    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig,
        description="chunking, embedding and index of the documents the questions are asked of",
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="the model that writes questions and answers, and how it runs",
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="device and precision of every model"
    )
    questions: QuestionsConfig = Field(
        default_factory=QuestionsConfig, description="how questions are made from the chunks"
    )
    answers: AnswersConfig = Field(
        default_factory=AnswersConfig,
        description="how answers are generated, checked against the oracle and repaired",
    )
    qa: QAConfig = Field(default_factory=QAConfig, description="how a `--qa` file is read")
    assembly: AssemblyConfig = Field(
        default_factory=AssemblyConfig,
        description="how examples are assembled: distractors, oracle share, targets, eval split",
    )
    gate: GateConfig = Field(
        default_factory=GateConfig,
        description="the evidence gate calibrated on the build's questions",
    )
    index_name: str = Field(
        "", description="index under retrieval.indexes_dir; empty = the docs folder's name"
    )
    checkpoint_every: int = Field(
        8,
        ge=1,
        description="chunks (or QA lines) per checkpoint; a crash loses at most one batch",
    )
