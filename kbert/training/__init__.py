"""kbert.training"""
