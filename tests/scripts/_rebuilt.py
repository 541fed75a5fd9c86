"""Classes rebuilt by name wherever they are unpickled, as DEAP's ``creator`` makes them.

``create(name, base)`` makes a class and puts it in this module; pickling the class (as any
instance of it does) sends ``rebuild(name, base)``, which makes a new class on the receiving
side and puts it in this module in place of the one there.
"""

import copyreg


class Rebuilt(type):
    # One base, not a tuple of them, as DEAP's MetaCreator: a class rebuilt field by field (by
    # value, as cloudpickle does a class it cannot find by name) fails here.
    def __new__(mcs, name, base, namespace):
        return super().__new__(mcs, name, (base,), namespace)

    def __init__(cls, name, base, namespace):
        super().__init__(name, (base,), namespace)

    def __reduce__(cls):
        return rebuild, (cls.__name__, cls.__bases__[0])


def rebuild(name, base):
    cls = Rebuilt(name, base, {"__module__": __name__})
    globals()[name] = cls
    return cls


copyreg.pickle(Rebuilt, Rebuilt.__reduce__)
create = rebuild
