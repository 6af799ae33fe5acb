"""The id stored in post_embeddings.model: the encoder, the treatment, and the centring means' version
(sentiment/centring.py VERSION). A module of its own, not embeddings.py (which re-exports it), so that naming it
imports no torch: a report's topics section and the topic alert read embeddings by this id without a model."""

EMBEDDING_MODEL = "multilingual-e5-small/centred@1"
