"""kbert.data"""
