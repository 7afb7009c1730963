# A deterministic Python workload for the benchmarks: dicts, lists, strings.
d = {}
total = 0
for i in range(300000):
    key = "k%d" % (i % 5000)
    d[key] = [i, str(i) * 3, {"x": i}]
    if i % 7 == 0:
        d.pop("k%d" % ((i * 31) % 5000), None)
    total += len(d)
print(total)
