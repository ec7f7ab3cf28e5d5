"""download"""
