"""kbert.convert"""
