"""kbert.tasks: fine-tuning heads composed around a pre-trained `BertEncoder`.

    BertClassifier        single texts / pairs: softmax, multi-label sigmoid, regression
    BertTokenClassifier   word-level labels (NER), predictions as character spans
    BertSpanExtractor     extractive QA: start / end logits, windowed long contexts
    BertMultipleChoice    one score per (prompt, choice) pair

Each has `from_pretrained(source, ...)` (kbert run dir, .keras file, transformers or Google
checkpoint, or a fine-tuned directory), `compile()` with the BERT fine-tuning recipe, and
`save_pretrained(dir)`. Data helpers: labels and splits in `kbert.tasks.labels`, reading
files in `kbert.tasks.readers`, tf.data in `kbert.tasks.datasets`; scores in `kbert.tasks.metrics`.
"""

from kbert.tasks.classifier import BertClassifier, ClassifierPredictions
from kbert.tasks.datasets import TruncationReport, TruncationWarning, text_dataset
from kbert.tasks.labels import (
                                DataError,
                                LabelledData,
                                LabelMap,
                                UnknownLabelError,
                                stratified_split,
)
from kbert.tasks.loading import EncoderSourceError, load_encoder
from kbert.tasks.metrics import ClassificationReport, classification_report
from kbert.tasks.multiple_choice import BertMultipleChoice
from kbert.tasks.readers import load_labelled
from kbert.tasks.span_extractor import BertSpanExtractor
from kbert.tasks.token_classifier import BertTokenClassifier
from kbert.tasks.tuning import LayerwiseAdamW, bert_finetuning_optimizer

__all__ = [
    "BertClassifier", "BertMultipleChoice", "BertSpanExtractor", "BertTokenClassifier",
    "ClassifierPredictions", "ClassificationReport", "DataError",
    "EncoderSourceError", "LabelMap", "LabelledData", "LayerwiseAdamW", "TruncationReport",
    "TruncationWarning",
    "UnknownLabelError", "bert_finetuning_optimizer", "classification_report", "load_encoder",
    "load_labelled", "stratified_split", "text_dataset",
]
