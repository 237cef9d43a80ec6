"""mchub — clinic measurement gateway.

The distribution ships the top-level packages ``protocol``, ``drivers``, ``edge``,
``cloud``, ``provisioning`` and ``firmware_sim`` (see docs/architecture.md); this
package holds only the version and the ``mchub`` command line.
"""

__version__ = "0.1.0"
