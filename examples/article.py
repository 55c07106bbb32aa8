"""The article this tool grew from, in a few lines of domain-tune's Python API.

Fine-tune the multilingual Universal Sentence Encoder on the article's 98
scored pairs of job titles with the article's recipe (Adam 1e-5, batch 8, up
to 20 epochs, early stopping on the training loss), and look at what changed:
the similarity of the article's nine titles before and after (and the
difference), STS-B before and after, and a few free-text titles matched to
ESCO occupations.

    python examples/article.py                      # the whole article
    python examples/article.py --epochs 1 --sts-limit 100 --esco-limit 500   # a quick look

Writes ``runs/article/`` (the tuned model and its card), ``base.png``,
``tuned.png`` and ``matches.csv`` there.  In a notebook, run the body of
``article()`` cell by cell: ``plot_similarity`` returns the figure.
"""

import argparse
import pathlib

import pandas as pd

import domain_tune as dt

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TITLES = [  # the article's nine job titles
    "Data Scientist", "Data Analyst", "Data Engineer",
    "Nurse Practitioner", "Registered Nurse", "Medical Assistant",
    "Social Media Manager", "Marketing Strategist", "Product Marketing Manager",
]
QUERIES = ["data wizard", "ML engineer", "Krankenpfleger", "infermiera", "growth hacker",
           "community manager"]


def article(pairs, sts_dir, esco, out, epochs=20, sts_limit=None, esco_limit=None):
    """The article's steps; returns what a reader would look at."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)

    base = dt.load_model("use-m3")
    dt.plot_similarity(base, texts=TITLES, out=out / "base.png")
    sts_before = dt.evaluate_sts(base, sts_dir=sts_dir, limit=sts_limit)

    run = dt.train(pairs, out / "run", epochs=epochs, monitor="loss", texts=TITLES,
                   sts_dir=sts_dir, sts_limit=sts_limit, overwrite=True, quiet=True,
                   data_attribution="the article's sample, built from ESCO (ESCO © European Union)")
    tuned = run.load()
    dt.plot_similarity(base, tuned, TITLES, titles=["base", "tuned"], out=out / "tuned.png")
    sts_after = dt.evaluate_sts(tuned, sts_dir=sts_dir, limit=sts_limit)

    occupations = pd.read_csv(esco, usecols=["conceptUri", "preferredLabel"], nrows=esco_limit)
    matches = dt.match(tuned, QUERIES, occupations["preferredLabel"],
                       corpus_ids=occupations["conceptUri"], top_k=3)
    matches.to_csv(out / "matches.csv", index=False)
    return {"run": run.path, "epochs_run": run.metrics["epochs_run"],
            "sts_before": sts_before, "sts_after": sts_after, "matches": matches}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=DATA / "seed-sample" / "training_data.csv")
    parser.add_argument("--sts-dir", default=DATA / "stsbenchmark")
    parser.add_argument("--esco", default=DATA / "esco" / "occupations_en.csv")
    parser.add_argument("--out", default=ROOT / "runs" / "article")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sts-limit", type=int, help="Only the first N STS-B dev pairs.")
    parser.add_argument("--esco-limit", type=int, help="Only the first N ESCO occupations.")
    args = parser.parse_args(argv)
    result = article(args.pairs, args.sts_dir, args.esco, args.out, args.epochs, args.sts_limit,
                     args.esco_limit)
    b, a = result["sts_before"], result["sts_after"]
    print(f"STS-B dev Pearson {b['pearson']:.4f} -> {a['pearson']:.4f}, "
          f"Spearman {b['spearman']:.4f} -> {a['spearman']:.4f} ({b['n']:,} pairs); "
          f"{result['epochs_run']} epochs; model in {result['run']}")
    with pd.option_context("display.width", 120, "display.max_colwidth", 40):
        print(result["matches"][["query", "rank", "corpus_text", "cosine"]].to_string(index=False))
    return result


if __name__ == "__main__":
    main()
