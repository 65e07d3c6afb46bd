"""kbert.export"""
