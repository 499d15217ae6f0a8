"""Upstream's public library surface, as data for test_upstream_api.

Written down from upstream's source (containerregistry v0.0.38): every
module, the modules each package set as attributes, and each module's
top-level public names. A signature is the parameter list as upstream
wrote it, `self` included; defaults are source text, evaluated in the
project's module when compared. Class `bases` name upstream's base classes
(relative to `containerregistry.`, or `builtins.`/third-party), and
`attributes` its class-level attributes and properties.
"""

# Each package's submodules, as its __init__ set them as attributes.
PACKAGES = {
    'containerregistry.client': ['docker_name', 'docker_creds', 'monitor'],
    'containerregistry.client.v1': [
        'docker_creds', 'docker_http', 'docker_image', 'docker_session',
        'save',
    ],
    'containerregistry.client.v2': [
        'docker_creds', 'docker_http', 'util', 'docker_digest',
        'docker_image', 'v1_compat', 'docker_session', 'append',
    ],
    'containerregistry.client.v2_2': [
        'docker_creds', 'docker_digest', 'docker_http', 'docker_image',
        'append', 'docker_image_list', 'oci_compat', 'v2_compat',
        'docker_session', 'save',
    ],
    'containerregistry.transform.v1': ['metadata'],
    'containerregistry.transform.v2_2': ['metadata'],
    'containerregistry.transport': ['nested', 'retry', 'transport_pool'],
    'containerregistry.tools': [
        'patched', 'platform_args', 'logging_setup', 'docker_appender',
        'docker_puller', 'docker_pusher', 'fast_puller', 'fast_flatten',
        'fast_importer', 'fast_pusher', 'image_digester',
    ],
}

MODULES = {
    'containerregistry.client.docker_creds': {
        'constants': ['DefaultKeychain'],
        'classes': {
            'Provider': {
                'bases': [],
                'methods': {
                    'Get': '(self)',
                },
            },
            'Anonymous': {
                'bases': ['client.docker_creds.Provider'],
                'methods': {
                    'Get': '(self)',
                },
            },
            'SchemeProvider': {
                'bases': ['client.docker_creds.Provider'],
                'methods': {
                    '__init__': '(self, scheme)',
                    'Get': '(self)',
                },
                'attributes': ['suffix'],
            },
            'Basic': {
                'bases': ['client.docker_creds.SchemeProvider'],
                'methods': {
                    '__init__': '(self, username, password)',
                },
                'attributes': ['password', 'suffix', 'username'],
            },
            'OAuth2': {
                'bases': ['client.docker_creds.Basic'],
                'methods': {
                    '__init__': '(self, creds, transport)',
                },
                'attributes': ['password'],
            },
            'Helper': {
                'bases': ['client.docker_creds.Basic'],
                'methods': {
                    '__init__': '(self, name, registry)',
                    'Get': '(self)',
                },
            },
            'Keychain': {
                'bases': [],
                'methods': {
                    'Resolve': '(self, name)',
                },
            },
        },
    },
    'containerregistry.client.docker_name': {
        'constants': ['DEFAULT_DOMAIN', 'DEFAULT_TAG', 'USER_AGENT'],
        'functions': {
            'from_string': '(name)',
        },
        'classes': {
            'BadNameException': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'Registry': {
                'bases': [],
                'methods': {
                    '__init__': '(self, name, strict=True)',
                    '__str__': '(self)',
                    '__repr__': '(self)',
                    '__eq__': '(self, other)',
                    '__ne__': '(self, other)',
                    '__hash__': '(self)',
                    'scope': '(self, unused_action)',
                },
                'attributes': ['registry'],
            },
            'Repository': {
                'bases': ['client.docker_name.Registry'],
                'methods': {
                    '__init__': '(self, name, strict=True)',
                    '__str__': '(self)',
                    '__eq__': '(self, other)',
                    '__ne__': '(self, other)',
                    '__hash__': '(self)',
                    'scope': '(self, action)',
                },
                'attributes': ['repository'],
            },
            'Tag': {
                'bases': ['client.docker_name.Repository'],
                'methods': {
                    '__init__': '(self, name, strict=True)',
                    '__str__': '(self)',
                    'as_repository': '(self)',
                    '__eq__': '(self, other)',
                    '__ne__': '(self, other)',
                    '__hash__': '(self)',
                },
                'attributes': ['tag'],
            },
            'Digest': {
                'bases': ['client.docker_name.Repository'],
                'methods': {
                    '__init__': '(self, name, strict=True)',
                    '__str__': '(self)',
                    'as_repository': '(self)',
                    '__eq__': '(self, other)',
                    '__ne__': '(self, other)',
                    '__hash__': '(self)',
                },
                'attributes': ['digest'],
            },
        },
    },
    'containerregistry.client.monitor': {
        'classes': {
            'Context': {
                'bases': [],
                'methods': {
                    '__init__': '(self, operation)',
                    '__enter__': '(self)',
                    '__exit__': '(self, exc_type, exc_value, traceback)',
                },
            },
            'Nop': {
                'bases': ['client.monitor.Context'],
                'methods': {
                    '__init__': '(self, operation)',
                    '__enter__': '(self)',
                    '__exit__': '(self, exc_type, exc_value, traceback)',
                },
            },
        },
    },
    'containerregistry.client.v1.docker_creds': {
        'classes': {
            'Token': {
                'bases': ['client.docker_creds.SchemeProvider'],
                'methods': {
                    '__init__': '(self, token)',
                },
                'attributes': ['suffix'],
            },
        },
    },
    'containerregistry.client.v1.docker_http': {
        'functions': {
            'Request': (
                '(transport, url, credentials, accepted_codes=None, '
                'body=None, content_type=None)'),
            'Scheme': '(endpoint)',
        },
        'classes': {
            'BadStatusException': {
                'bases': ['builtins.Exception'],
                'methods': {
                    '__init__': '(self, resp, content)',
                },
                'attributes': ['content', 'resp', 'status'],
            },
        },
    },
    'containerregistry.client.v1.docker_image': {
        'classes': {
            'DockerImage': {
                'bases': [],
                'methods': {
                    'top': '(self)',
                    'repositories': '(self)',
                    'parent': '(self, layer_id)',
                    'json': '(self, layer_id)',
                    'layer': '(self, layer_id)',
                    'uncompressed_layer': '(self, layer_id)',
                    'diff_id': '(self, digest)',
                    'ancestry': '(self, layer_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'FromShardedTarball': {
                'bases': ['client.v1.docker_image.DockerImage'],
                'methods': {
                    '__init__': (
                        '(self, layer_to_tarball, top, name=None, '
                        'compresslevel=9)'),
                    'top': '(self)',
                    'repositories': '(self)',
                    'json': '(self, layer_id)',
                    'uncompressed_layer': '(self, layer_id)',
                    'layer': '(self, layer_id)',
                    'ancestry': '(self, layer_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'FromTarball': {
                'bases': ['client.v1.docker_image.FromShardedTarball'],
                'methods': {
                    '__init__': '(self, tarball, name=None, compresslevel=9)',
                },
            },
            'FromRegistry': {
                'bases': ['client.v1.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, name, basic_creds, transport)',
                    'top': '(self)',
                    'repositories': '(self)',
                    'tags': '(self)',
                    'raw_tags': '(self)',
                    'json': '(self, layer_id)',
                    'layer': '(self, layer_id)',
                    'ancestry': '(self, layer_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'Random': {
                'bases': ['client.v1.docker_image.DockerImage'],
                'methods': {
                    '__init__': (
                        '(self, sample, num_layers=5, layer_byte_size=64, '
                        'blobs=None)'),
                    'top': '(self)',
                    'repositories': '(self)',
                    'json': '(self, layer_id)',
                    'layer': '(self, layer_id)',
                    'ancestry': '(self, layer_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v1.docker_session': {
        'classes': {
            'Push': {
                'bases': [],
                'methods': {
                    '__init__': '(self, name, creds, transport)',
                    '__enter__': '(self)',
                    'upload': '(self, image)',
                    '__exit__': (
                        '(self, exception_type, unused_value, '
                        'unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v1.save': {
        'functions': {
            'multi_image_tarball': '(tag_to_image, tar)',
            'tarball': '(name, image, tar)',
        },
    },
    'containerregistry.client.v2.append': {
        'classes': {
            'Layer': {
                'bases': ['client.v2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, base, tar_gz, port, *envs)',
                    'manifest': '(self)',
                    'blob': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2.docker_creds': {
        'classes': {
            'Bearer': {
                'bases': ['client.docker_creds.SchemeProvider'],
                'methods': {
                    '__init__': '(self, bearer_token)',
                },
                'attributes': ['suffix'],
            },
        },
    },
    'containerregistry.client.v2.docker_digest': {
        'functions': {
            'SHA256': "(content, prefix='sha256:')",
            'SignedManifestToSHA256': '(manifest)',
        },
    },
    'containerregistry.client.v2.docker_http': {
        'constants': ['ACTIONS', 'CATALOG', 'DELETE', 'PULL', 'PUSH'],
        'functions': {
            'ParseNextLinkHeader': '(resp)',
            'Scheme': '(endpoint)',
        },
        'classes': {
            'Diagnostic': {
                'bases': [],
                'methods': {
                    '__init__': '(self, error)',
                    '__eq__': '(self, other)',
                },
                'attributes': ['code', 'detail', 'message'],
            },
            'V2DiagnosticException': {
                'bases': ['builtins.Exception'],
                'methods': {
                    '__init__': '(self, resp, content)',
                },
                'attributes': ['diagnostics', 'response', 'status'],
            },
            'BadStateException': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'TokenRefreshException': {
                'bases': ['client.v2.docker_http.BadStateException'],
                'methods': {
                },
            },
            'Transport': {
                'bases': [],
                'methods': {
                    '__init__': '(self, name, creds, transport, action)',
                    'Request': (
                        '(self, url, accepted_codes=None, method=None, '
                        'body=None, content_type=None)'),
                    'PaginatedRequest': (
                        '(self, url, accepted_codes=None, method=None, '
                        'body=None, content_type=None)'),
                },
            },
        },
    },
    'containerregistry.client.v2.docker_image': {
        'functions': {
            'extract': '(image, tar)',
        },
        'classes': {
            'DigestMismatchedError': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'DockerImage': {
                'bases': [],
                'methods': {
                    'fs_layers': '(self)',
                    'blob_set': '(self)',
                    'digest': '(self)',
                    'manifest': '(self)',
                    'blob_size': '(self, digest)',
                    'blob': '(self, digest)',
                    'uncompressed_blob': '(self, digest)',
                    'diff_id': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__str__': '(self)',
                },
            },
            'FromRegistry': {
                'bases': ['client.v2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, name, basic_creds, transport)',
                    'tags': '(self)',
                    'manifests': '(self)',
                    'children': '(self)',
                    'exists': '(self)',
                    'manifest': '(self, validate=True)',
                    'blob_size': '(self, digest)',
                    'blob': '(self, digest)',
                    'catalog': '(self, page_size=100)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__str__': '(self)',
                },
            },
        },
    },
    'containerregistry.client.v2.docker_session': {
        'functions': {
            'Delete': '(name, creds, transport)',
        },
        'classes': {
            'Push': {
                'bases': [],
                'methods': {
                    '__init__': (
                        '(self, name, creds, transport, mount=None, '
                        'threads=1)'),
                    'upload': '(self, image)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, exception_type, unused_value, '
                        'unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2.util': {
        'functions': {
            'DetachSignatures': '(manifest)',
            'Sign': '(unsigned_manifest)',
            'Rename': '(manifest, name)',
        },
        'classes': {
            'BadManifestException': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
        },
    },
    'containerregistry.client.v2.v1_compat': {
        'classes': {
            'V1FromV2': {
                'bases': ['client.v1.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, v2_img)',
                    'top': '(self)',
                    'repositories': '(self)',
                    'parent': '(self, layer_id)',
                    'json': '(self, layer_id)',
                    'uncompressed_layer': '(self, layer_id)',
                    'layer': '(self, layer_id)',
                    'diff_id': '(self, digest)',
                    'ancestry': '(self, layer_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'V2FromV1': {
                'bases': ['client.v2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, v1_img)',
                    'manifest': '(self)',
                    'uncompressed_blob': '(self, digest)',
                    'blob': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.append': {
        'classes': {
            'Layer': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': (
                        '(self, base, tar_gz, diff_id=None, overrides=None)'),
                    'manifest': '(self)',
                    'config_file': '(self)',
                    'blob': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.docker_creds': {
        'classes': {
            'Bearer': {
                'bases': ['client.docker_creds.SchemeProvider'],
                'methods': {
                    '__init__': '(self, bearer_token)',
                },
                'attributes': ['suffix'],
            },
        },
    },
    'containerregistry.client.v2_2.docker_digest': {
        'functions': {
            'SHA256': "(content, prefix='sha256:')",
        },
    },
    'containerregistry.client.v2_2.docker_http': {
        'constants': [
            'ACTIONS',
            'CATALOG',
            'CONFIG_JSON_MIME',
            'DELETE',
            'FOREIGN_LAYER_MIME',
            'LAYER_MIME',
            'MANIFEST_LIST_MIME',
            'MANIFEST_LIST_MIMES',
            'MANIFEST_SCHEMA1_MIME',
            'MANIFEST_SCHEMA1_MIMES',
            'MANIFEST_SCHEMA1_SIGNED_MIME',
            'MANIFEST_SCHEMA2_MIME',
            'MANIFEST_SCHEMA2_MIMES',
            'NON_DISTRIBUTABLE_LAYER_MIMES',
            'OCI_CONFIG_JSON_MIME',
            'OCI_GZIP_LAYER_MIME',
            'OCI_IMAGE_INDEX_MIME',
            'OCI_LAYER_MIME',
            'OCI_MANIFEST_MIME',
            'OCI_MANIFEST_MIMES',
            'OCI_NONDISTRIBUTABLE_GZIP_LAYER_MIME',
            'OCI_NONDISTRIBUTABLE_LAYER_MIME',
            'PULL',
            'PUSH',
            'SUPPORTED_MANIFEST_MIMES',
        ],
        'functions': {
            'ParseNextLinkHeader': '(resp)',
            'Scheme': '(endpoint)',
        },
        'classes': {
            'Diagnostic': {
                'bases': [],
                'methods': {
                    '__init__': '(self, error)',
                    '__eq__': '(self, other)',
                },
                'attributes': ['code', 'detail', 'message'],
            },
            'V2DiagnosticException': {
                'bases': ['builtins.Exception'],
                'methods': {
                    '__init__': '(self, resp, content)',
                },
                'attributes': ['diagnostics', 'response', 'status'],
            },
            'BadStateException': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'TokenRefreshException': {
                'bases': ['client.v2_2.docker_http.BadStateException'],
                'methods': {
                },
            },
            'Transport': {
                'bases': [],
                'methods': {
                    '__init__': '(self, name, creds, transport, action)',
                    'Request': (
                        '(self, url, accepted_codes=None, method=None, '
                        'body=None, content_type=None, accepted_mimes=None)'),
                    'PaginatedRequest': (
                        '(self, url, accepted_codes=None, method=None, '
                        'body=None, content_type=None)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.docker_image': {
        'functions': {
            'is_compressed': '(name)',
            'extract': '(image, tar)',
        },
        'classes': {
            'DigestMismatchedError': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'DockerImage': {
                'bases': [],
                'methods': {
                    'fs_layers': '(self)',
                    'diff_ids': '(self)',
                    'config_blob': '(self)',
                    'blob_set': '(self)',
                    'distributable_blob_set': '(self)',
                    'digest': '(self)',
                    'media_type': '(self)',
                    'manifest': '(self)',
                    'config_file': '(self)',
                    'blob_size': '(self, digest)',
                    'blob': '(self, digest)',
                    'uncompressed_blob': '(self, digest)',
                    'digest_to_diff_id': '(self, digest)',
                    'layer': '(self, diff_id)',
                    'uncompressed_layer': '(self, diff_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__str__': '(self)',
                },
            },
            'Delegate': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, image)',
                    'manifest': '(self)',
                    'media_type': '(self)',
                    'diff_ids': '(self)',
                    'fs_layers': '(self)',
                    'config_blob': '(self)',
                    'blob_set': '(self)',
                    'config_file': '(self)',
                    'blob_size': '(self, digest)',
                    'blob': '(self, digest)',
                    'uncompressed_blob': '(self, digest)',
                    'layer': '(self, diff_id)',
                    'uncompressed_layer': '(self, diff_id)',
                    '__str__': '(self)',
                },
            },
            'FromRegistry': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': (
                        '(self, name, basic_creds, transport, '
                        'accepted_mimes=docker_http.MANIFEST_SCHEMA2_MIMES)'),
                    'tags': '(self)',
                    'manifests': '(self)',
                    'children': '(self)',
                    'exists': '(self)',
                    'manifest': '(self, validate=True)',
                    'config_file': '(self)',
                    'blob_size': '(self, digest)',
                    'blob': '(self, digest)',
                    'catalog': '(self, page_size=100)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__str__': '(self)',
                },
            },
            'FromTarball': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, tarball, name=None, compresslevel=9)',
                    'manifest': '(self)',
                    'config_file': '(self)',
                    'uncompressed_blob': '(self, digest)',
                    'blob': '(self, digest)',
                    'uncompressed_layer': '(self, diff_id)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'FromDisk': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': (
                        '(self, config_file, layers, '
                        'uncompressed_layers=None, legacy_base=None, '
                        'foreign_layers_manifest=None)'),
                    'manifest': '(self)',
                    'config_file': '(self)',
                    'uncompressed_blob': '(self, digest)',
                    'uncompressed_layer': '(self, diff_id)',
                    'blob': '(self, digest)',
                    'blob_size': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.docker_image_list': {
        'classes': {
            'DigestMismatchedError': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'InvalidMediaTypeError': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'Platform': {
                'bases': [],
                'methods': {
                    '__init__': '(self, content=None)',
                    'architecture': '(self)',
                    'os': '(self)',
                    'os_version': '(self)',
                    'os_features': '(self)',
                    'variant': '(self)',
                    'features': '(self)',
                    'can_run': '(self, required)',
                    'compatible_with': '(self, target)',
                    '__iter__': '(self)',
                },
            },
            'DockerImageList': {
                'bases': [],
                'methods': {
                    'digest': '(self)',
                    'media_type': '(self)',
                    'manifest': '(self)',
                    'resolve_all': '(self, target=None)',
                    'resolve': '(self, target=None)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__iter__': '(self)',
                },
            },
            'Delegate': {
                'bases': ['client.v2_2.docker_image_list.DockerImageList'],
                'methods': {
                    '__init__': '(self, image)',
                    'manifest': '(self)',
                    'media_type': '(self)',
                    'resolve_all': '(self, target=None)',
                    'resolve': '(self, target=None)',
                    '__iter__': '(self)',
                    '__str__': '(self)',
                },
            },
            'FromRegistry': {
                'bases': ['client.v2_2.docker_image_list.DockerImageList'],
                'methods': {
                    '__init__': (
                        '(self, name, basic_creds, transport, '
                        'accepted_mimes=docker_http.MANIFEST_LIST_MIMES)'),
                    'images': '(self)',
                    'resolve_all': '(self, target=None)',
                    'resolve_all_unordered': '(self, target=None)',
                    'exists': '(self)',
                    'manifest': '(self, validate=True)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__str__': '(self)',
                    '__iter__': '(self)',
                },
            },
            'FromList': {
                'bases': ['client.v2_2.docker_image_list.DockerImageList'],
                'methods': {
                    '__init__': '(self, images)',
                    'manifest': '(self)',
                    'resolve_all': '(self, target=None)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                    '__iter__': '(self)',
                },
            },
        },
    },
    'containerregistry.client.v2_2.docker_session': {
        'functions': {
            'Delete': '(name, creds, transport)',
        },
        'classes': {
            'Push': {
                'bases': [],
                'methods': {
                    '__init__': (
                        '(self, name, creds, transport, mount=None, '
                        'threads=1)'),
                    'upload': '(self, image, use_digest=False)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, exception_type, unused_value, '
                        'unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.oci_compat': {
        'classes': {
            'OCIFromV22': {
                'bases': ['client.v2_2.docker_image.Delegate'],
                'methods': {
                    'manifest': '(self)',
                    'media_type': '(self)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'V22FromOCI': {
                'bases': ['client.v2_2.docker_image.Delegate'],
                'methods': {
                    'manifest': '(self)',
                    'media_type': '(self)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'IndexFromList': {
                'bases': ['client.v2_2.docker_image_list.Delegate'],
                'methods': {
                    '__init__': '(self, image, recursive=True)',
                    'manifest': '(self)',
                    'media_type': '(self)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'ListFromIndex': {
                'bases': ['client.v2_2.docker_image_list.Delegate'],
                'methods': {
                    '__init__': '(self, image, recursive=True)',
                    'manifest': '(self)',
                    'media_type': '(self)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.client.v2_2.save': {
        'functions': {
            'multi_image_tarball': '(tag_to_image, tar, tag_to_v1_image=None)',
            'tarball': '(name, image, tar)',
            'fast': '(image, directory, threads=1, cache_directory=None)',
            'uncompressed': '(image, directory, threads=1)',
        },
    },
    'containerregistry.client.v2_2.v2_compat': {
        'constants': ['EMPTY_TAR_BYTES', 'EMPTY_TAR_DIGEST'],
        'functions': {
            'config_file': '(v1_compats, diff_ids)',
        },
        'classes': {
            'BadDigestException': {
                'bases': ['builtins.Exception'],
                'methods': {
                },
            },
            'V22FromV2': {
                'bases': ['client.v2_2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, v2_img)',
                    'manifest': '(self)',
                    'config_file': '(self)',
                    'uncompressed_blob': '(self, digest)',
                    'blob': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
            'V2FromV22': {
                'bases': ['client.v2.docker_image.DockerImage'],
                'methods': {
                    '__init__': '(self, v2_2_img)',
                    'manifest': '(self)',
                    'uncompressed_blob': '(self, digest)',
                    'diff_id': '(self, digest)',
                    'blob': '(self, digest)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.tools.docker_appender': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.docker_puller': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.docker_pusher': {
        'constants': ['parser'],
        'functions': {
            'Tag': '(name, files)',
            'main': '()',
        },
    },
    'containerregistry.tools.fast_flatten': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.fast_importer': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.fast_puller': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.fast_pusher': {
        'constants': ['parser'],
        'functions': {
            'Tag': '(name, files)',
            'main': '()',
        },
    },
    'containerregistry.tools.image_digester': {
        'constants': ['parser'],
        'functions': {
            'main': '()',
        },
    },
    'containerregistry.tools.logging_setup': {
        'constants': ['FORMAT', 'TIMESTAMP_FORMAT'],
        'functions': {
            'DefineCommandLineArgs': '(argparser)',
            'Init': '(args=None)',
        },
        'classes': {
            'Formatter': {
                'bases': ['logging.Formatter'],
                'methods': {
                    '__init__': '(self)',
                    'format': '(self, record)',
                },
            },
        },
    },
    'containerregistry.tools.patched': {
        'classes': {
            'Httplib2': {
                'bases': [],
                'methods': {
                    '__init__': '(self)',
                    '__enter__': '(self)',
                    '__exit__': (
                        '(self, unused_type, unused_value, unused_traceback)'),
                },
            },
        },
    },
    'containerregistry.tools.platform_args': {
        'functions': {
            'AddArguments': '(parser)',
            'FromArgs': '(args)',
        },
    },
    'containerregistry.transform.v1.metadata': {
        'functions': {
            'Override': (
                "(data, options, docker_version='1.5.0', "
                "architecture='amd64', operating_system='linux')"),
        },
        'classes': {
            'Overrides': {
                'bases': [],
                'methods': {
                    '__new__': (
                        '(cls, name=None, parent=None, size=None, '
                        'entrypoint=None, cmd=None, user=None, labels=None, '
                        'env=None, ports=None, volumes=None, workdir=None)'),
                },
            },
        },
    },
    'containerregistry.transform.v2_2.metadata': {
        'functions': {
            'Override': (
                "(data, options, architecture='amd64', "
                "operating_system='linux')"),
        },
        'classes': {
            'Overrides': {
                'bases': [],
                'methods': {
                    '__new__': (
                        '(cls, layers=None, entrypoint=None, cmd=None, '
                        'user=None, labels=None, env=None, ports=None, '
                        'volumes=None, workdir=None, author=None, '
                        'created_by=None, creation_time=None)'),
                    'Override': (
                        '(self, layers=None, entrypoint=None, cmd=None, '
                        'user=None, labels=None, env=None, ports=None, '
                        'volumes=None, workdir=None, author=None, '
                        'created_by=None, creation_time=None)'),
                },
            },
        },
    },
    'containerregistry.transport.nested': {
        'classes': {
            'NestedTransport': {
                'bases': ['httplib2.Http'],
                'methods': {
                    '__init__': '(self, source_transport)',
                    '__getstate__': '(self)',
                    '__setstate__': '(self, state)',
                    'add_credentials': '(self, *args, **kwargs)',
                    'add_certificate': '(self, *args, **kwargs)',
                    'clear_credentials': '(self)',
                    'request': '(self, *args, **kwargs)',
                },
            },
        },
    },
    'containerregistry.transport.retry': {
        'constants': [
            'DEFAULT_BACKOFF_FACTOR',
            'DEFAULT_MAX_RETRIES',
            'DEFAULT_SOURCE_TRANSPORT_CALLABLE',
            'RETRYABLE_EXCEPTION_TYPES',
        ],
        'functions': {
            'ShouldRetry': '(err)',
        },
        'classes': {
            'Factory': {
                'bases': [],
                'methods': {
                    '__init__': '(self)',
                    'WithSourceTransportCallable': (
                        '(self, source_transport_callable)'),
                    'WithMaxRetries': '(self, max_retries)',
                    'WithBackoffFactor': '(self, backoff_factor)',
                    'WithShouldRetryFunction': '(self, should_retry_fn)',
                    'Build': '(self)',
                },
            },
            'RetryTransport': {
                'bases': ['transport.nested.NestedTransport'],
                'methods': {
                    '__init__': (
                        '(self, source_transport, '
                        'max_retries=DEFAULT_MAX_RETRIES, '
                        'backoff_factor=DEFAULT_BACKOFF_FACTOR, '
                        'should_retry_fn=ShouldRetry)'),
                    'request': '(self, *args, **kwargs)',
                },
            },
        },
    },
    'containerregistry.transport.transport_pool': {
        'classes': {
            'Http': {
                'bases': ['httplib2.Http'],
                'methods': {
                    '__init__': '(self, transport_factory, size=2)',
                    'request': '(self, *args, **kwargs)',
                },
            },
        },
    },
}
