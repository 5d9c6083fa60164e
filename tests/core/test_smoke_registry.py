from tests.factories import promote


def test_two_promotions_make_two_versions_and_one_backup(registry):
    v1 = promote(registry, seed=1)
    v2 = promote(registry, seed=2, accuracy=0.85)
    assert (v1.version, v2.version) == ("1.0.0", "1.1.0")
    sets = registry.backups()
    assert len(sets) == 1 and sets[0].complete and sets[0].version == "1.0.0" and sets[0].integrity == "ok"
