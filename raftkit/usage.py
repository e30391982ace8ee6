"""What `raftkit --help` and `raftkit COMMAND --help` tell a user: what each command does, and
examples to copy.

HELP maps a command ("" for raftkit itself, "index build" for a subcommand) to (description,
examples). The examples are real: tests/test_docs.py parses every `  raftkit ...` line of them.
"""

HELP = {
    "": (
        "Put domain knowledge into a small open language model with retrieval (RAG),\n"
        "fine-tuning, or both (RAFT), and measure which one worked: accuracy,\n"
        "hallucination and freshness.",
        "the pipeline, one command per step (make demo runs it all on corpora/demo):\n"
        "  raftkit index build corpora/demo/v1 --name demo\n"
        '  raftkit ask demo "On which port does a Tarnwick node serve its HTTP API?"\n'
        "  raftkit build-dataset corpora/demo/v1 --qa corpora/demo/qa.jsonl \\\n"
        "      --set qa.answer_field=answer_v1 --out datasets/demo-v1\n"
        "  raftkit train --config recipes/sft_lora.yaml \\\n"
        "      --set data.path=datasets/demo-v1\n"
        "  raftkit compare --config recipes/compare_demo.yaml --out reports/demo\n"
        "\n"
        "Settings: defaults < the --config YAML recipe < --set SECTION.KEY=VALUE, and\n"
        "every output folder keeps the resolved config.yaml. Bad input is one line,\n"
        "'error: ...', with exit code 2.\n"
        "More: raftkit COMMAND --help, README.md and docs/.",
    ),
    "index": (
        "Build, update and query a FAISS index of a folder of documents: the retrieval\n"
        "that ask, build-dataset and compare use. Indexes live in indexes/NAME/.",
        "examples:\n"
        "  raftkit index build corpora/demo/v1 --name demo\n"
        '  raftkit index query demo "Which port serves the HTTP API?" -k 3\n'
        "  raftkit index update corpora/demo/v2 --name demo",
    ),
    "index build": (
        "Load a folder of documents (.txt, .md, .html, .pdf and .jsonl corpora,\n"
        "searched recursively), split them into chunks and embed them into\n"
        "indexes/NAME/. Files that cannot be read are reported and skipped.",
        "examples:\n"
        "  raftkit index build corpora/demo/v1 --name demo\n"
        "  raftkit index build corpora/demo/v1 --name demo-hnsw \\\n"
        "      --config recipes/index_hnsw.yaml --set retrieval.chunking.size=128",
    ),
    "index update": (
        "Bring an index up to date with its folder: added and changed documents are\n"
        "embedded, deleted ones dropped, and the rest keep their vectors. The result\n"
        "equals a fresh build.",
        "example:\n  raftkit index update corpora/demo/v2 --name demo",
    ),
    "index query": (
        "Print the chunks of an index nearest to a text: rank, score, chunk id and a\n"
        "snippet (--json: the whole chunks with their metadata).",
        'example:\n  raftkit index query demo "Which port serves the HTTP API?" -k 3',
    ),
    "ask": (
        "Answer a question with plain RAG: retrieve the top-k chunks of an index, ask\n"
        "the model, and print the answer and the chunks it quoted. With a `raftkit\n"
        "train` run as --model, the evidence gate the run carries refuses when no chunk\n"
        "scores high enough.",
        "examples:\n"
        '  raftkit ask demo "On which port does a Tarnwick node serve its HTTP API?"\n'
        '  raftkit ask demo "On which port does a Tarnwick node serve its HTTP API?" \\\n'
        "      --model runs/demo-sft --json",
    ),
    "build-dataset": (
        "Write RAFT training data from a folder of documents: questions about each\n"
        "chunk (or your own, --qa), answers that quote the chunk holding the answer,\n"
        "and examples that show that chunk among distractors. Writes a DatasetDict and\n"
        "JSONL files for SFT, DPO and reward models into --out; rerun the same command\n"
        "to resume after an interruption.",
        "examples:\n"
        "  raftkit build-dataset corpora/demo/v1 --qa corpora/demo/qa.jsonl \\\n"
        "      --set qa.answer_field=answer_v1 --out datasets/demo-v1\n"
        "  raftkit build-dataset corpora/demo/v1 --config recipes/raft_build.yaml \\\n"
        "      --out datasets/demo-v1-gen",
    ),
    "train": (
        "Fine-tune a model: SFT, DPO, reward model or RLHF (the recipe's stage),\n"
        "training every weight, LoRA adapters, or LoRA on a 4-bit base (its method).\n"
        "Writes a run folder with the model, metrics.jsonl, loss.png and run.json;\n"
        "every command that takes a model takes the run folder.",
        "examples:\n"
        "  raftkit train --config recipes/sft_lora_tiny.yaml\n"
        "  raftkit train --config recipes/sft_lora.yaml \\\n"
        "      --set data.path=datasets/demo-v1 --set optim.max_steps=200\n"
        "  raftkit train --config recipes/sft_lora.yaml --resume\n"
        "  raftkit train --config recipes/sft_full.yaml --launcher accelerate \\\n"
        "      --accelerate-config recipes/accelerate/fsdp.yaml",
    ),
    "export": (
        "Write a training run's model as a standalone model folder; --merge folds a\n"
        "LoRA adapter into its base weights, so the model loads without peft.",
        "example:\n  raftkit export runs/sft_lora --merge --out models/raft-135m",
    ),
    "compare": (
        "Ask the same questions of several systems (base, RAG, fine-tuned, RAFT, ...),\n"
        "score accuracy, hallucination and freshness with bootstrap intervals, and\n"
        "write report.html, report.md, results.json and per_question.csv into --out.\n"
        "Prints the headline table and the verdict; rerun the same command to resume\n"
        "after an interruption.",
        "examples:\n"
        "  raftkit compare --config recipes/compare_tiny.yaml --out reports/tiny\n"
        "  raftkit compare --config recipes/compare_demo.yaml --out reports/demo \\\n"
        "      --set questions.max_questions=48",
    ),
    "config": (
        "List every setting raftkit takes: each key as --set writes it, with its type,\n"
        "default and what it does, command by command (index and ask, build-dataset,\n"
        "train, compare, probes). A recipe YAML holds the same keys.",
        "examples:\n"
        "  raftkit config train.optim\n"
        "  raftkit config retrieval\n"
        "  raftkit config compare.systems",
    ),
}
