# filestore.py: the flash store over real files, for tests on MicroPython (unix port) and CPython.
# Same file calls as board/rp2040.py FlashStore (open/seek/readinto, os.stat, temp + verify +
# rename), which cannot be imported off the Pico; tests/test_store.py runs one contract on both.
# The files live on disk, not in the heap, so a full production-size log fits a 192 KiB heap.
import os

_ENOENT = 2


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FileStore:
    def __init__(self, root):
        self.root = root
        if not _exists(root):
            os.mkdir(root)

    def _p(self, name):
        return self.root + "/" + name

    def read(self, name):
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError as e:
            if e.errno == _ENOENT:
                return None
            raise

    def size(self, name):
        try:
            return os.stat(self._p(name))[6]
        except OSError as e:
            if e.errno == _ENOENT:
                return None
            raise

    def read_into(self, name, offset, buf):
        try:
            f = open(self._p(name), "rb")
        except OSError as e:
            if e.errno == _ENOENT:
                return 0
            raise
        try:
            f.seek(offset)
            return f.readinto(buf) or 0
        finally:
            f.close()

    def write(self, name, data):
        tmp = self._p(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            with open(tmp, "rb") as f:
                if f.read() != bytes(data):
                    raise OSError(5)  # EIO: read-back differs
            os.rename(tmp, self._p(name))
        except OSError:
            os.remove(tmp)
            raise

    def append(self, name, data):
        with open(self._p(name), "ab") as f:
            f.write(data)

    def remove_all(self):
        """Delete the files and the directory (test clean-up)."""
        for name in os.listdir(self.root):
            os.remove(self._p(name))
        os.rmdir(self.root)


def temp_root(tag):
    """A fresh directory path under /tmp for one test."""
    rnd = os.urandom(4)
    return "/tmp/bedside-%s-%02x%02x%02x%02x" % (tag, rnd[0], rnd[1], rnd[2], rnd[3])
