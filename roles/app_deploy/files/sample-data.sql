-- A few sample rows, loaded by app_deploy only when `enterprises` is empty
-- (the db_seed role loads the real volume of data).
INSERT INTO enterprises (credit_code, name, district, industry, legal_rep, address, registered_on) VALUES
  ('91440200MA4UTEST01', '韶关市曲江区示例化工有限公司', '曲江区', '化学原料和化学制品制造业', '张伟', '韶关市曲江区马坝镇', '2012-03-15'),
  ('91440200MA4UTEST02', '韶关市武江区示例钢铁有限公司', '武江区', '黑色金属冶炼和压延加工业', '李娜', '韶关市武江区西联镇', '2008-07-01'),
  ('91440200MA4UTEST03', '乐昌市示例水泥有限公司', '乐昌市', '非金属矿物制品业', '王芳', '乐昌市坪石镇', '2015-11-20')
ON CONFLICT (credit_code) DO NOTHING;
INSERT INTO ratings (enterprise_id, year, score, grade, rated_on)
  SELECT id, 2025, 92.5, '环保诚信', DATE '2026-03-31' FROM enterprises WHERE credit_code = '91440200MA4UTEST01'
  UNION ALL SELECT id, 2025, 71.0, '环保警示', DATE '2026-03-31' FROM enterprises WHERE credit_code = '91440200MA4UTEST02'
  UNION ALL SELECT id, 2025, 84.0, '环保良好', DATE '2026-03-31' FROM enterprises WHERE credit_code = '91440200MA4UTEST03'
ON CONFLICT (enterprise_id, year) DO NOTHING;
