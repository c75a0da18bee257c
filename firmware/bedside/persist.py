# persist.py: TEMPORARY minimal persistence queue (replaced by the persistence branch).
class Persist:
    def __init__(self, store, alarm_log, event_log, slots=24):
        self.store = store
        self.alog = alarm_log
        self.elog = event_log
        self.q = []
        self.fault = False
        self.errors = 0
        self.last_error = None
        self.dropped = 0

    def log_alarm(self, uptime_ms, fields):
        self.q.append((0, uptime_ms, fields))
        return True

    def log_event(self, uptime_ms, fields):
        self.q.append((1, uptime_ms, fields))
        return True

    def save(self, name, data):
        self.q = [x for x in self.q if not (x[0] == 2 and x[1] == name)]
        self.q.append((2, name, data))

    def saving(self, name):
        return any(x[0] == 2 and x[1] == name for x in self.q)

    def pending(self):
        return len(self.q)

    def step(self):
        if not self.q:
            return False
        k, a, b = self.q[0]
        try:
            if k == 0:
                self.alog.append(a, b)
            elif k == 1:
                self.elog.append(a, b)
            else:
                self.store.write(a, b)
            self.q.pop(0)
            self.fault = False
        except Exception as e:
            self.fault = True
            self.errors += 1
            self.last_error = str(e)[:80]
        return True
