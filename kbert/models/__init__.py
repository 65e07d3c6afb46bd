"""kbert.models"""
