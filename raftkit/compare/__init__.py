"""`raftkit compare`: fine-tuning vs RAG vs RAFT on accuracy, hallucination and freshness.

config.py (the recipe schema) -> questions.py (QA .jsonl or build-dataset eval split) -> systems.py
(retrieval once, generation and choice log-likelihoods from one prefill, resumable) -> scoring.py
(one typed row per question and system) -> metrics.py (the metric registry) -> intervals.py (its
values with bootstrap and paired intervals) and extras.py (ragas) -> report.py (report.md,
results.json, per_question.csv) and report_html.py (report.html); run.py ties them together.
"""

from raftkit.compare.config import CompareConfig
from raftkit.compare.run import ComparisonReport, compare

__all__ = ["CompareConfig", "ComparisonReport", "compare"]
