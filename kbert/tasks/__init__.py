"""kbert.tasks"""
