"""kbert.tokenization"""
