"""The builtin world: highway-env roads and traffic seen through our own pinhole camera.

Import ``sim.builtin.world.BuiltinSimulator`` (or use ``sim.registry``); this
package imports highway-env only when a simulator is built.
"""
