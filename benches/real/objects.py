import json, random
random.seed(1)
data=[{"id":i,"name":"n%d"%i,"tags":[str(j) for j in range(i%7)],"v":random.random()} for i in range(200000)]
s=json.dumps(data)
for _ in range(3):
    d=json.loads(s)
    d.sort(key=lambda x:x["v"])
    s2=json.dumps(d)
x={}
for i in range(300000): x[str(i)*3]=[i]*(i%5)
del x
