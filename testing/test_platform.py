"""Platform matching and the platform command-line flags."""
import argparse

import pytest

from containerregistry.client.v2_2.platform import Platform
from containerregistry.tools import platform_args


def _matches(target: dict, entry: dict | None) -> bool:
    """How a manifest list picks a child: target.can_run(entry platform)."""
    return Platform(target).can_run(None if entry is None else Platform(entry))


def test_defaults():
    p = Platform()
    assert p.architecture() == 'amd64'
    assert p.os() == 'linux'
    assert p.os_version() is None
    assert p.variant() is None
    assert p.os_features() == set()
    assert p.features() == set()
    assert dict(p) == {'architecture': 'amd64', 'os': 'linux'}


def test_accessors_and_dict():
    content = {'architecture': 'arm', 'os': 'linux', 'variant': 'v7',
               'os.version': '1', 'os.features': ['a', 'b'],
               'features': ['sse4']}
    p = Platform(content)
    assert p.architecture() == 'arm'
    assert p.variant() == 'v7'
    assert p.os_version() == '1'
    assert p.os_features() == {'a', 'b'}
    assert p.features() == {'sse4'}
    assert dict(p) == content


def test_iter_fills_defaults_without_mutating_input():
    content = {'variant': 'v8'}
    p = Platform(content)
    assert dict(p) == {'variant': 'v8', 'architecture': 'amd64',
                       'os': 'linux'}
    assert content == {'variant': 'v8'}


def test_always_truthy():
    assert bool(Platform()) is True


def test_none_entry_always_runs():
    assert _matches({'architecture': 's390x'}, None)


@pytest.mark.parametrize('target,entry,expected', [
    ({}, {'architecture': 'amd64', 'os': 'linux'}, True),
    ({}, {'architecture': 'arm64', 'os': 'linux'}, False),
    ({}, {'architecture': 'amd64', 'os': 'windows'}, False),
    ({'architecture': 'arm64'}, {'architecture': 'arm64', 'os': 'linux'}, True),
    # Entry requires a variant the target lacks (upstream rule).
    ({'architecture': 'arm'}, {'architecture': 'arm', 'variant': 'v7'}, False),
    ({'architecture': 'arm', 'variant': 'v7'},
     {'architecture': 'arm', 'variant': 'v7'}, True),
    ({'architecture': 'arm', 'variant': 'v6'},
     {'architecture': 'arm', 'variant': 'v7'}, False),
    # An entry without a variant fits any target variant (upstream rule).
    ({'architecture': 'arm', 'variant': 'v6'}, {'architecture': 'arm'}, True),
])
def test_arch_os_variant(target, entry, expected):
    assert _matches(target, entry) is expected


@pytest.mark.parametrize('target,entry', [
    # Docker Hub lists arm64 images as arm64/v8.
    ({'architecture': 'arm64'}, {'architecture': 'arm64', 'variant': 'v8'}),
    ({'architecture': 'arm64', 'variant': 'v8'}, {'architecture': 'arm64'}),
    ({'architecture': 'arm64', 'variant': 'v8'},
     {'architecture': 'arm64', 'variant': 'v8'}),
    ({'architecture': 'arm64', 'variant': ''},
     {'architecture': 'arm64', 'variant': 'v8'}),
])
def test_arm64_v8_equivalence(target, entry):
    assert _matches(target, entry)
    assert Platform(entry).compatible_with(Platform(target))


def test_arm64_other_variants_still_exact():
    assert not _matches({'architecture': 'arm64'},
                        {'architecture': 'arm64', 'variant': 'v9'})
    assert not _matches({'architecture': 'arm64', 'variant': 'v9'},
                        {'architecture': 'arm64', 'variant': 'v8'})
    # The v8 default is arm64's only; amd64 gets no such leniency.
    assert not _matches({}, {'architecture': 'amd64', 'variant': 'v8'})


@pytest.mark.parametrize('target', [
    {},
    {'architecture': 'unknown', 'os': 'unknown'},
    {'architecture': 'unknown'},
])
def test_unknown_entries_never_match(target):
    assert not _matches(target, {'architecture': 'unknown', 'os': 'unknown'})
    assert not _matches(target, {'architecture': 'amd64', 'os': 'unknown'})
    assert not _matches(target, {'architecture': 'unknown', 'os': 'linux'})


def test_os_version():
    win = {'architecture': 'amd64', 'os': 'windows',
           'os.version': '10.0.17763.1234'}
    assert _matches({'os': 'windows', 'os.version': '10.0.17763.1234'}, win)
    assert not _matches({'os': 'windows', 'os.version': '10.0.14393.1'}, win)
    assert not _matches({'os': 'windows'}, win)
    assert not _matches({'os': 'windows', 'os.version': ''}, win)
    # A target version does not exclude entries that state none.
    assert _matches({'os': 'windows', 'os.version': '10.0.1'},
                    {'os': 'windows'})
    # An empty entry version is "not given".
    assert _matches({'os': 'windows'}, {'os': 'windows', 'os.version': ''})


def test_empty_strings_mean_not_given():
    p = Platform({'os.version': '', 'variant': ''})
    assert p.os_version() is None
    assert p.variant() is None
    assert _matches({}, {'variant': ''})
    # An empty os or architecture is the default (upstream compared it
    # literally, so `--os ""` matched no entry).
    blank = Platform({'os': '', 'architecture': ''})
    assert (blank.os(), blank.architecture()) == ('linux', 'amd64')
    assert _matches({'os': '', 'architecture': ''},
                    {'os': 'linux', 'architecture': 'amd64'})


def test_features_subsets():
    entry = {'features': ['sse4'], 'os.features': ['win32k']}
    assert _matches({'features': ['sse4', 'aes'],
                     'os.features': ['win32k']}, entry)
    assert not _matches({'features': ['aes'], 'os.features': ['win32k']},
                        entry)
    assert not _matches({'features': ['sse4']}, entry)
    # Target features beyond what the entry needs are fine.
    assert _matches({'features': ['sse4']}, {})


def test_compatible_with_is_reverse_of_can_run():
    entry = Platform({'architecture': 'arm', 'variant': 'v7'})
    assert entry.compatible_with(Platform({'architecture': 'arm',
                                           'variant': 'v7'}))
    assert not entry.compatible_with(Platform({'architecture': 'arm'}))
    assert Platform({'architecture': 'arm'}).compatible_with(
        Platform({'architecture': 'arm', 'variant': 'v7'}))


def test_docker_image_list_can_reexport():
    from containerregistry.client.v2_2 import platform
    assert platform.Platform is Platform


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='puller.par')
    platform_args.AddArguments(parser)
    return parser


def test_add_arguments_order_and_help():
    actions = _parser()._actions[1:]
    assert [a.option_strings for a in actions] == [
        ['--os'], ['--os-version'], ['--os-features'], ['--architecture'],
        ['--variant'], ['--features']]
    assert [a.nargs for a in actions] == [None, None, '*', None, None, '*']
    assert [a.help for a in actions] == [
        'For multi-platform manifest lists, specifies the operating system.',
        'For multi-platform manifest lists, specifies the operating system '
        'version.',
        'For multi-platform manifest lists, specifies operating system '
        'features.',
        'For multi-platform manifest lists, specifies the CPU architecture.',
        'For multi-platform manifest lists, specifies the CPU variant.',
        'For multi-platform manifest lists, specifies CPU features.',
    ]


def test_from_args_nothing_given():
    p = platform_args.FromArgs(_parser().parse_args([]))
    assert dict(p) == {'architecture': 'amd64', 'os': 'linux'}


def test_from_args_rules_docker_empty_words():
    # What container_pull passes for a default linux/amd64 pull.
    args = _parser().parse_args([
        '--os', 'linux', '--os-version', '', '--os-features', '',
        '--architecture', 'amd64', '--variant', '', '--features', ''])
    assert args.os_features == ['']
    p = platform_args.FromArgs(args)
    assert dict(p) == {'os': 'linux', 'architecture': 'amd64'}
    assert p.can_run(Platform({'architecture': 'amd64', 'os': 'linux'}))


def test_from_args_space_joined_lists():
    args = _parser().parse_args([
        '--os', 'windows', '--os-version', '10.0.17763.1234',
        '--os-features', 'win32k', '--architecture', 'arm64',
        '--variant', 'v8', '--features', 'sse4  aes', 'aes', ' '])
    p = platform_args.FromArgs(args)
    assert dict(p) == {
        'os': 'windows', 'os.version': '10.0.17763.1234',
        'os.features': ['win32k'], 'architecture': 'arm64', 'variant': 'v8',
        'features': ['sse4', 'aes']}
    assert p.features() == {'sse4', 'aes'}
    assert p.os_features() == {'win32k'}


def test_from_args_arm64_matches_hub_entry():
    p = platform_args.FromArgs(_parser().parse_args(
        ['--architecture', 'arm64', '--variant', '']))
    assert p.can_run(Platform({'architecture': 'arm64', 'os': 'linux',
                               'variant': 'v8'}))
    assert not p.can_run(Platform({'architecture': 'amd64', 'os': 'linux'}))


def test_from_args_tolerates_missing_attributes():
    p = platform_args.FromArgs(argparse.Namespace(architecture='s390x'))
    assert dict(p) == {'architecture': 's390x', 'os': 'linux'}
