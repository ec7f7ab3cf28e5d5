"""placeholder"""


class SyntheticArchive:
    def __init__(self, source):
        self.source = source

    def get(self, path, now_ms):
        return None
