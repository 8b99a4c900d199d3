#!/usr/bin/python3
"""Generate and load the envcredit seed data set, deterministically.

Run on the database host: as `postgres` for PostgreSQL (peer authentication),
as root for MariaDB (unix_socket authentication). The same --seed and --size
always produce the same rows, byte for byte, on both engines.

Loads only into empty tables (the `enterprises` table decides): a seeded
database is left alone and reported as unchanged. Prints one JSON object.

    envcredit_seed.py --engine postgresql|mariadb --db envcredit --size small|bench
                      [--seed 20261128] [--check]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import sys
from collections.abc import Iterator

SIZES = {
    # enterprises, events per enterprise (mean), publications, evidence length (chars)
    "small": {"enterprises": 400, "events": 6, "publications": 6, "evidence": 400},
    "bench": {"enterprises": 120_000, "events": 12, "publications": 200, "evidence": 900},
}
YEARS = (2021, 2022, 2023, 2024, 2025)
DISTRICTS = ["浈江区", "武江区", "曲江区", "乐昌市", "南雄市", "仁化县", "始兴县", "翁源县", "新丰县", "乳源瑶族自治县"]
DISTRICT_CODES = {
    "浈江区": "440204",
    "武江区": "440203",
    "曲江区": "440205",
    "乐昌市": "440281",
    "南雄市": "440282",
    "仁化县": "440224",
    "始兴县": "440222",
    "翁源县": "440229",
    "新丰县": "440233",
    "乳源瑶族自治县": "440232",
}
INDUSTRIES = [
    "有色金属冶炼",
    "钢铁",
    "水泥制造",
    "火力发电",
    "造纸",
    "化工",
    "陶瓷",
    "电镀",
    "食品加工",
    "畜禽养殖",
    "稀土加工",
    "医药制造",
    "建筑材料",
    "污水处理",
    "危险废物处置",
]
PREFIX = ["韶关", "粤北", "丹霞", "南岭", "曲江", "武江", "北江", "浈阳", "韶钢", "乳源", "马坝", "珠玑"]
WORDS = [
    "宏达",
    "盛源",
    "华泰",
    "金鑫",
    "鸿运",
    "永兴",
    "恒丰",
    "新材",
    "绿洲",
    "东阳",
    "瑞丰",
    "嘉禾",
    "锦华",
    "丰泽",
    "长青",
    "富源",
    "安泰",
    "德信",
    "明珠",
    "远航",
]
SUFFIX = ["有限公司", "股份有限公司", "实业有限公司", "科技有限公司", "集团有限公司", "厂"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红文辉海燕"
STREETS = ["解放路", "风度路", "工业大道", "沿江路", "建设路", "新华南路", "芙蓉大道", "东堤北路", "南华路", "韶南大道"]
CATEGORIES = ["污染防治", "生态保护", "环境管理", "社会监督"]
INDICATORS = [
    ("废水排放达标", "污染防治"),
    ("废气排放达标", "污染防治"),
    ("固体废物规范处置", "污染防治"),
    ("危险废物转移联单", "污染防治"),
    ("噪声排放达标", "污染防治"),
    ("排污许可执行", "环境管理"),
    ("环评手续齐全", "环境管理"),
    ("三同时制度落实", "环境管理"),
    ("在线监测正常运行", "环境管理"),
    ("突发环境事件应急预案", "环境管理"),
    ("环境信息公开", "社会监督"),
    ("群众投诉处理", "社会监督"),
    ("清洁生产审核", "生态保护"),
    ("生态修复责任", "生态保护"),
    ("环境保护税缴纳", "环境管理"),
    ("自行监测方案", "环境管理"),
    ("环保设施运行台账", "环境管理"),
    ("重点排污单位名录", "社会监督"),
    ("土壤污染隐患排查", "生态保护"),
    ("环境违法行为整改", "污染防治"),
]
SOURCES = ["现场检查", "在线监测", "群众投诉", "双随机抽查", "媒体报道", "企业自报"]
GRADES = [(90, "环保诚信"), (75, "环保良好"), (60, "环保警示"), (0, "环保不良")]
PHRASES = [
    "经现场检查发现",
    "该企业",
    "废水总排口",
    "化学需氧量超标",
    "未按规定",
    "已责令限期整改",
    "整改到位",
    "复查合格",
    "台账记录不完整",
    "在线监测数据异常",
    "依法处以罚款",
    "排放浓度",
    "二氧化硫",
    "氮氧化物",
    "颗粒物",
    "危险废物贮存场所",
    "防渗措施不到位",
    "环境应急预案未备案",
    "按期完成整改",
    "群众反映夜间噪声扰民",
    "。",
    "，",
    "；",
]
CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CODE_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
TABLES = ["enterprises", "indicators", "behaviour_events", "ratings", "publications"]


def credit_code(rnd: random.Random, district: str, index: int) -> str:
    """An 18-character unified social credit code (GB 32100-2015 check character)."""
    org = f"{index:06d}" + "".join(rnd.choice(CODE_CHARS[:10]) for _ in range(2))
    body = "91" + DISTRICT_CODES[district] + org + rnd.choice(CODE_CHARS[:10])
    total = sum(CODE_CHARS.index(c) * w for c, w in zip(body, CODE_WEIGHTS))
    check = (31 - total % 31) % 31
    return body + CODE_CHARS[check]


def text(rnd: random.Random, length: int) -> str:
    out: list[str] = []
    size = 0
    while size < length:
        word = rnd.choice(PHRASES)
        out.append(word)
        size += len(word)
    return "".join(out)


def batches(size: str, seed: int, batch: int = 5000) -> Iterator[dict[str, list[tuple[object, ...]]]]:
    """The data set as a stream of batches (parents before children), so the bench size
    never sits in memory whole. One random stream: the same seed gives the same rows."""
    cfg = SIZES[size]
    rnd = random.Random(seed)
    base = dt.date(2000, 1, 1)
    data: dict[str, list[tuple[object, ...]]] = {t: [] for t in TABLES}
    for i, (name, cat) in enumerate(INDICATORS, start=1):
        desc = None if i % 7 == 0 else f"{name}：{text(rnd, 40)}"
        data["indicators"].append((i, f"ZB{i:03d}", name, cat, f"{rnd.randint(200, 900) / 100:.2f}", desc))
    event_id = 0
    rating_id = 0
    for i in range(1, cfg["enterprises"] + 1):
        district = DISTRICTS[rnd.randrange(len(DISTRICTS))]
        name = rnd.choice(PREFIX) + rnd.choice(WORDS) + rnd.choice(INDUSTRIES)[:2] + rnd.choice(SUFFIX)
        name = f"{name[:-4]}{i}{name[-4:]}"
        rep = (
            None if i % 11 == 0 else rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.randint(1, 2)))
        )
        addr = None if i % 13 == 0 else f"广东省韶关市{district}{rnd.choice(STREETS)}{rnd.randint(1, 999)}号"
        reg = None if i % 17 == 0 else base + dt.timedelta(days=rnd.randrange(9000))
        created = dt.datetime(2024, 1, 1) + dt.timedelta(seconds=rnd.randrange(60_000_000))
        data["enterprises"].append(
            (i, credit_code(rnd, district, i), name, district, rnd.choice(INDUSTRIES), rep, addr, reg, created)
        )
        for _ in range(rnd.randint(0, cfg["events"] * 2)):
            event_id += 1
            occurred = dt.date(2021, 1, 1) + dt.timedelta(days=rnd.randrange(1800))
            penalty = None if rnd.random() < 0.6 else f"{rnd.randint(1000, 50_000_000) / 100:.2f}"
            evidence = None if rnd.random() < 0.5 else text(rnd, rnd.randint(cfg["evidence"] // 4, cfg["evidence"]))
            data["behaviour_events"].append(
                (
                    event_id,
                    i,
                    rnd.randint(1, len(INDICATORS)),
                    occurred,
                    text(rnd, rnd.randint(20, 80)),
                    penalty,
                    rnd.choice(SOURCES),
                    evidence,
                )
            )
        for year in YEARS:
            if rnd.random() < 0.15:
                continue
            rating_id += 1
            score = rnd.randint(3000, 10000) / 100
            grade = next(g for floor, g in GRADES if score >= floor)
            data["ratings"].append(
                (
                    rating_id,
                    i,
                    year,
                    f"{score:.2f}",
                    grade,
                    dt.date(year + 1, 3, 1) + dt.timedelta(days=rnd.randrange(60)),
                )
            )
        if i % batch == 0:
            yield data
            data = {t: [] for t in TABLES}
    for p in range(1, cfg["publications"] + 1):
        year = YEARS[(p - 1) % len(YEARS)]
        body = text(rnd, rnd.randint(20_000, 60_000))  # large text fields
        data["publications"].append(
            (
                p,
                year,
                f"韶关市{year}年度企业环境信用评价结果公告（第{p}号）",
                dt.date(year + 1, 4, 1) + dt.timedelta(days=p % 28),
                body,
            )
        )
    yield data


def _copy_value(v: object) -> str:
    if v is None:
        return "\\N"
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def load_postgresql(db: str, stream: Iterator[dict[str, list[tuple[object, ...]]]], counts: dict[str, int]) -> None:
    import psycopg2  # python3-psycopg2 on the host

    conn = psycopg2.connect(dbname=db)
    try:
        with conn, conn.cursor() as cur:
            for data in stream:
                for table in TABLES:
                    if not data[table]:
                        continue
                    buf = io.StringIO()
                    for row in data[table]:
                        buf.write("\t".join(_copy_value(v) for v in row) + "\n")
                    buf.seek(0)
                    cur.copy_expert(f"COPY {table} FROM STDIN", buf)
                    counts[table] += len(data[table])
            for table in TABLES:
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT max(id) FROM {table}), 1))"
                )
            cur.execute("ANALYZE")
    finally:
        conn.close()


def load_mariadb(
    db: str, stream: Iterator[dict[str, list[tuple[object, ...]]]], counts: dict[str, int], socket: str
) -> None:
    import pymysql  # python3-pymysql on the host

    conn = pymysql.connect(unix_socket=socket, user="root", database=db, charset="utf8mb4", autocommit=False)
    try:
        with conn.cursor() as cur:
            for data in stream:
                for table in TABLES:
                    rows_ = data[table]
                    if not rows_:
                        continue
                    marks = ", ".join(["%s"] * len(rows_[0]))
                    for start in range(0, len(rows_), 500):
                        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows_[start : start + 500])
                    counts[table] += len(rows_)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()


def existing_rows(engine: str, db: str, socket: str) -> int:
    if engine == "postgresql":
        import psycopg2

        conn = psycopg2.connect(dbname=db)
    else:
        import pymysql

        conn = pymysql.connect(unix_socket=socket, user="root", database=db, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM enterprises")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    ap.add_argument("--db", default="envcredit")
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--socket", default="/run/mysqld/mysqld.sock")
    ap.add_argument("--check", action="store_true", help="report what would be done, change nothing")
    args = ap.parse_args()
    have = existing_rows(args.engine, args.db, args.socket)
    if have:
        print(json.dumps({"changed": False, "msg": f"{args.db} already holds {have} enterprises; not seeded again"}))
        return 0
    if args.check:
        print(json.dumps({"changed": True, "msg": f"would load the {args.size} data set into {args.db}"}))
        return 0
    counts = {t: 0 for t in TABLES}
    stream = batches(args.size, args.seed)
    if args.engine == "postgresql":
        load_postgresql(args.db, stream, counts)
    else:
        load_mariadb(args.db, stream, counts, args.socket)
    print(
        json.dumps(
            {"changed": True, "msg": f"loaded the {args.size} data set into {args.db}", "rows": counts},
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
