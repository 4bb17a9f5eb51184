"""Cosmopedia-style synthetic data: what to generate (the plan) and how to ask for it (prompts, requests).

    templates.py  the versioned prompt templates: one per format, each filled with a seed extract and an audience
    plan.py       seed documents → topics (MiniLM embeddings + k-means) → generations spread evenly over
                  topic × format × audience, written once before any generation
    generate.py   one generation request through the annotator's OpenAI-compatible client (retries, deadlines,
                  reply cap), with its finish reason and token counts

Why a room of its own: this is neither a datatrove block (blocks/ holds pipeline steps that know no winnow
module) nor a classifier (classifiers/ learns and applies quality scores); it is the model-facing half of the
`synthesize` stage, reusable from a notebook without the stage. The stage itself (files, executors, resume,
post-processing blocks, summary) is winnow/pipelines/stages/synthesize.py; the post-processing blocks are in
winnow/blocks/synthetic/.
"""
