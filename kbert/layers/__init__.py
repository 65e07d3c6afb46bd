"""kbert.layers"""
