-- The sqlite3 workload of tests/real_programs.rs (and the README's measurement):
-- 300 000 rows from a recursive CTE, three indexes, aggregates, a self-join,
-- a recursive walk, updates and deletes, and an integrity check.
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, g TEXT NOT NULL,
               s TEXT NOT NULL, v REAL NOT NULL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
INSERT INTO t(id, k, g, s, v)
SELECT x, (x * 7919) % 100003, 'g' || (x % 97),
       printf('%08x-%s', (x * 2654435761) % 4294967296,
              substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26, 1 + x % 17)),
       (x % 1000) / 7.0
FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_g_v ON t(g, v);
CREATE UNIQUE INDEX t_s ON t(s, id);
SELECT count(*), sum(k), min(s), max(s), round(sum(v), 3) FROM t;
SELECT g, count(*), sum(k), round(avg(v), 6), min(id), max(id)
FROM t GROUP BY g ORDER BY g;
SELECT k, count(*) FROM t WHERE k BETWEEN 500 AND 520 GROUP BY k ORDER BY k;
SELECT count(DISTINCT k), count(DISTINCT substr(s, 1, 3)) FROM t;
SELECT a.g, count(*) FROM t AS a JOIN t AS b ON a.k = b.k AND a.id < b.id
WHERE a.id % 50 = 0 GROUP BY a.g ORDER BY 2 DESC, 1 LIMIT 5;
SELECT s FROM t WHERE s > '7fff' ORDER BY s LIMIT 3;
SELECT id, k, s FROM t ORDER BY v DESC, id LIMIT 3;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE g = 'g42' ORDER BY k DESC LIMIT 20);
WITH RECURSIVE chain(id, depth) AS (
  SELECT 1, 0 UNION ALL
  SELECT (SELECT min(id) FROM t WHERE k > (SELECT k FROM t WHERE id = chain.id)), depth + 1
  FROM chain WHERE depth < 200 AND id IS NOT NULL)
SELECT count(*), sum(id) FROM chain;
UPDATE t SET s = upper(s) || '!' WHERE id % 3 = 0;
DELETE FROM t WHERE k % 11 = 0;
SELECT count(*), sum(length(s)), max(s) FROM t;
SELECT length(json_group_array(s)) FROM (SELECT s FROM t WHERE id % 1000 = 7);
PRAGMA integrity_check;
