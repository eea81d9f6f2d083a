"""The search's pieces that need no training: `SearchRun`'s results, the
resume point, the proposals' report module and the dataset facts (the
whole run: tests/test_search.py and tests/test_resilience.py)."""

import dataclasses

import numpy as np

from hournas_tf import data
from hournas_tf.common import runner
from hournas_tf.nas import config as config_lib
from hournas_tf.nas import proposal_report
from hournas_tf.nas import search_lib
from hournas_tf.nas import stages


def demo_config(**changes):
    return config_lib.SearchConfig(**{
        'space': 'efficientnet', 'image_size': 32, 'width_multiplier': 0.25,
        'targets': {'macs': 10e6, 'params': 0.25e6}, **changes})


def test_progress_lines_are_prefixed(capsys):
    runner.log('step 3')
    assert capsys.readouterr().out == '[hournas] step 3\n'


def test_dataset_facts_have_one_home():
    assert data.KNOWN_DATASETS['imagenet2012'][:2] == (1000, 1281167)
    assert data.DataConfig(dataset='digits').weight_fraction == \
        data.WEIGHT_FRACTION
    config = demo_config(dataset='cifar10', image_size=None)
    assert search_lib.known_num_classes(config) == 10
    space = search_lib.search_space(config)
    assert (space.image_size, space.num_classes) == (32, 10)
    dconfig = search_lib.data_config(config, image_size=24)
    assert (dconfig.dataset, dconfig.image_size, dconfig.batch_size) == (
        'cifar10', 24, config.batch_size)


def test_latency_table_is_none_without_one():
    config = demo_config()
    assert config_lib.latency_table(config, search_lib.search_space(
        config)) is None


def test_a_new_run_has_no_resume_point():
    point = search_lib.ResumePoint.read(demo_config(), checkpoint=None)
    assert point == search_lib.ResumePoint()
    assert not point.in_stage('vital') and not point.in_stage('nonvital')
    assert point.steps_done(None, 'vital', None) == 0
    config = demo_config()
    assert point.proposals(search_lib.search_space(config), config) is None


def test_resume_point_reads_stage1_json_into_proposals():
    config = demo_config()
    space = search_lib.search_space(config)
    vital_ops = {i: space.layers[i].candidates[0]
                 for i in space.vital_layers}
    searched = stages.nonvital_layers(space)
    logits = np.zeros((2, len(searched), len(space.op_names)))
    saved = search_lib.ProposalsResult(
        vital_ops, [space.vital_layers[0]], logits, 0.5,
        {'proposals': []}, {'vital': 3.0}, table=None).to_json()
    assert list(saved) == ['vital_ops', 'changed_vital', 'proposals',
                           'tau_end', 'proposal_optimization', 'seconds']
    # As JSON gives it back: string keys, lists.
    saved = {**saved, 'vital_ops': {str(i): op for i, op in
                                    vital_ops.items()},
             'proposals': logits.tolist()}
    state = search_lib.CheckpointState('ckpt-3', 2, 7)
    point = search_lib.ResumePoint(state, saved)
    assert point.in_stage('nonvital') and not point.in_stage('vital')
    result = point.proposals(space, config)
    assert result.vital_ops == vital_ops and result.tau_end == 0.5
    assert result.table.layer_indices == tuple(searched)
    assert result.seconds == {'vital': 3.0}
    assert np.asarray(result.logits).shape == logits.shape


def test_search_run_paths_and_results():
    run = search_lib.SearchRun(demo_config(output_dir='/tmp/out'))
    assert run.path('family', 'a.json') == '/tmp/out/family/a.json'
    assert run.env is None
    assert search_lib.Stage1Result({}).seconds == {}
    assert search_lib.VitalOps({1: 'x'}, []).ops == {1: 'x'}
    names = [f.name for f in dataclasses.fields(search_lib.Stage2Result)]
    assert names[:3] == ['supernet', 'pi', 'best']
    assert search_lib.Derivation([], {'total': 0}).rows_changed['total'] == 0
    assert 'resume' in [f.name for f in dataclasses.fields(
        search_lib.Setup)]


def test_kept_share_and_proposal_config_live_in_proposal_report():
    assert proposal_report.kept_share(0.5, 2) == 0.75
    pconfig = proposal_report.proposal_config(demo_config(proposal_iters=7))
    assert pconfig.iters == 7
